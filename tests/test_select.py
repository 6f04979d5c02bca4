"""select(): exact pruned counts per scope, torch.nn.utils.prune parity, and the per-layer cap."""

import copy

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils import prune

from crossprune.cli.checks import validate
from crossprune.criteria import magnitude
from crossprune.models import CNN, MLP
from crossprune.pruning import prunable, select

SHAPES = {"layers.0.weight": (7, 13), "layers.0.bias": (7,), "layers.2.weight": (5, 3, 3, 3), "head.weight": (4, 9)}
SPARSITIES = [0.0, 0.1, 0.37, 0.5, 0.8, 0.95]


def random_scores(seed: int, shapes: dict = SHAPES) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=g) for n, s in shapes.items()}


def zeros(t: torch.Tensor) -> int:
    return int((t == 0).sum())


@pytest.mark.parametrize("s", SPARSITIES)
def test_global_prunes_exactly_round_s_n(s):
    """Global scope: the total count of zeros is round(s * N) and the lowest scores go first."""
    scores = random_scores(1)
    mask = select(scores, s, "global")
    n = sum(t.numel() for t in scores.values())
    assert mask.zeros() == round(s * n) and mask.size() == n
    flat_scores = torch.cat([scores[k].reshape(-1) for k in scores])
    flat_mask = torch.cat([mask[k].reshape(-1) for k in scores])
    if 0 < s:
        assert flat_scores[flat_mask == 0].max() < flat_scores[flat_mask == 1].min()


@pytest.mark.parametrize("s", SPARSITIES)
def test_layerwise_prunes_round_s_n_in_every_param(s):
    """Layerwise scope: each param loses exactly round(s * n)."""
    mask = select(random_scores(2), s, "layerwise")
    for name, shape in SHAPES.items():
        assert mask[name].shape == shape
        assert zeros(mask[name]) == round(s * mask[name].numel())


@pytest.mark.parametrize("s", SPARSITIES)
def test_row_scope_spreads_zeros_evenly_over_rows(s):
    """Row scope: rows of a param differ by at most one zero and the param total is exact."""
    mask = select(random_scores(3), s, "row")
    for name, m in mask.items():
        rows = m.reshape(len(m), -1) if m.dim() > 1 else m.reshape(1, -1)
        per_row = (rows == 0).sum(1)
        assert int(per_row.max() - per_row.min()) <= 1
        assert zeros(m) == round(s * m.numel())


@pytest.mark.parametrize("layers", [["layers.0"], ["layers.2.weight", "head"], ["head.weight"]])
def test_layers_scope_prunes_only_the_listed_params(layers):
    """Layers scope: listed modules or params lose round(s * n); every other param keeps all weights."""
    mask = select(random_scores(4), 0.6, "layers", layers)
    for name, m in mask.items():
        picked = name in layers or name.rpartition(".")[0] in layers
        assert zeros(m) == (round(0.6 * m.numel()) if picked else 0), name


def test_unknown_scope_is_an_error():
    """An unknown scope raises ValueError."""
    with pytest.raises(ValueError, match="scope"):
        select(random_scores(5), 0.5, "everywhere")


def seeded(make):
    torch.manual_seed(0)
    return make()


NETS = {
    "mlp": lambda: MLP([1, 8, 8], 5, hidden=[32, 16]),
    "cnn": lambda: CNN([1, 8, 8], 5, channels=[8, 16]),
}


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("s", [0.2, 0.5, 0.8, 0.97])
def test_magnitude_global_equals_torch_global_unstructured(kind, s):
    """magnitude + global select gives exactly the mask of torch's global L1 pruning."""
    net = seeded(NETS[kind])
    params = prunable(net, OmegaConf.create({"include_head": False, "include_bias": False}))
    mask = select(magnitude.score(net, params, [], None), s, "global")
    ref = copy.deepcopy(net)
    modules = [(ref.get_submodule(n.rpartition(".")[0]), "weight") for n in params]
    prune.global_unstructured(modules, pruning_method=prune.L1Unstructured, amount=s)
    assert list(mask) == list(params)
    for name, (module, _) in zip(params, modules):
        assert torch.equal(mask[name], module.weight_mask), name


def test_max_layer_sparsity_holds_a_low_scored_layer_at_the_cap():
    """A layer of uniformly low scores would be wiped out; the cap holds it and others make up the count."""
    g = torch.Generator().manual_seed(6)
    scores = {"low": torch.rand(20, 10, generator=g) * 0.1, "high": 0.2 + torch.rand(40, 10, generator=g)}
    assert select(scores, 0.5, "global").per_param_sparsity()["low"] == 1.0  # what the cap prevents
    mask = select(scores, 0.5, "global", max_layer_sparsity=0.6)
    assert mask.zeros() == 300
    assert zeros(mask["low"]) == 120 and zeros(mask["high"]) == 180


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("s, cap", [(0.5, 0.6), (0.7, 0.75), (0.8, 0.9), (0.3, 0.31)])
def test_max_layer_sparsity_caps_every_layer_and_hits_the_target(seed, s, cap):
    """Every param stays at or under the cap while the total is within one weight of round(s * N)."""
    g = torch.Generator().manual_seed(seed)
    # Scales spread the layers apart so that plain global selection breaks the cap somewhere.
    scores = {n: torch.rand(shape, generator=g) * 10.0 ** (i - 2) for i, (n, shape) in enumerate(SHAPES.items())}
    n = sum(t.numel() for t in scores.values())
    assert max(select(scores, s, "global").per_param_sparsity().values()) > cap
    mask = select(scores, s, "global", max_layer_sparsity=cap)
    assert abs(mask.zeros() - round(s * n)) <= 1
    for name, m in mask.items():
        assert zeros(m) <= round(cap * m.numel()), name


def test_unreachable_cap_is_an_error():
    """A cap whose layers together cannot hold the target raises ValueError."""
    with pytest.raises(ValueError, match="out of reach"):
        select(random_scores(7), 0.8, "global", max_layer_sparsity=0.5)


def test_cap_that_validate_accepts_is_reachable(make_cfg):
    """A config validate accepts (max_layer_sparsity == sparsity) selects a mask instead of failing mid-pipeline."""
    cfg = make_cfg("prune.max_layer_sparsity=0.8")
    pair = validate(cfg)
    net = seeded(lambda: MLP(pair.a.input_shape, pair.a.num_classes, hidden=list(cfg.model.hidden)))
    params = prunable(net, cfg.prune)
    mask = select(magnitude.score(net, params, [], None), 0.8, "global", max_layer_sparsity=0.8)
    assert abs(mask.zeros() - round(0.8 * mask.size())) <= 1


def test_select_keeps_the_order_and_shapes_of_the_scores():
    """The mask has the scores' names in order and their shapes, as float 0/1 tensors."""
    scores = random_scores(8)
    for scope in ("global", "layerwise", "row"):
        mask = select(scores, 0.5, scope)
        assert list(mask) == list(scores)
        assert all(mask[n].shape == s.shape and mask[n].dtype == torch.float32 for n, s in scores.items())


def test_prunable_names_match_the_state_dict():
    """The names select sees are state-dict names of Linear/Conv weights, the head left out."""
    net = seeded(NETS["cnn"])
    names = list(prunable(net, OmegaConf.create({"include_head": False, "include_bias": True})))
    assert names == ["layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"]
    assert set(names) <= set(net.state_dict())
    assert isinstance(net.get_submodule("layers.3"), nn.Conv2d)
