"""Mask: 0/1 values only, safetensors round trip, zeros that survive optimizers, and the controls."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from safetensors.torch import load_file

from crossprune.models import MLP
from crossprune.pruning import Mask, plain_state_dict, prunable, select
from crossprune.pruning.controls import (
    dense,
    none,
    random_same_density,
    shuffle_within_layer,
)

WITH_BIAS = OmegaConf.create({"include_head": False, "include_bias": True})


def make_net() -> MLP:
    torch.manual_seed(0)
    return MLP([1, 8, 8], 5, hidden=[32, 16])


def random_mask(net: MLP, s: float = 0.7, seed: int = 1) -> Mask:
    g = torch.Generator().manual_seed(seed)
    return select({n: torch.rand(p.shape, generator=g) for n, p in prunable(net, WITH_BIAS).items()}, s, "global")


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, float("nan")])
def test_mask_rejects_values_other_than_0_and_1(bad):
    """A single non-0/1 entry is a ValueError naming the param."""
    t = torch.ones(3, 4)
    t[1, 2] = bad
    with pytest.raises(ValueError, match="w holds values other than 0 and 1"):
        Mask({"w": t})


def test_mask_stores_float32_on_cpu():
    """Bool and int 0/1 tensors are accepted and stored as float32."""
    mask = Mask({"a": torch.tensor([True, False]), "b": torch.tensor([[0, 1], [1, 1]])})
    assert all(t.dtype == torch.float32 for t in mask.values())
    assert mask.zeros() == 2 and mask.size() == 6 and mask.sparsity() == pytest.approx(1 / 3)
    assert mask.metrics() == {"sparsity": 2 / 6, "sparsity/a": 0.5, "sparsity/b": 0.25}


def test_save_load_round_trip(tmp_path):
    """Saved to safetensors and loaded back, a mask is equal name for name."""
    mask = random_mask(make_net())
    mask.save(tmp_path / "masks.safetensors")
    back = Mask.load(tmp_path / "masks.safetensors")
    assert isinstance(back, Mask) and back.keys() == mask.keys()
    for name in mask:
        assert torch.equal(back[name], mask[name])
    assert load_file(str(tmp_path / "masks.safetensors")).keys() == mask.keys()


def train_steps(net, optimizer, steps: int = 3) -> None:
    g = torch.Generator().manual_seed(2)
    for _ in range(steps):
        x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(5, (16,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()


OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
}


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_masked_weights_stay_exactly_zero_through_optimizer_steps(opt):
    """After apply and momentum-carrying steps, pruned entries are exact zeros and kept ones have moved."""
    net = make_net()
    keys, before = list(net.state_dict()), {k: v.clone() for k, v in net.state_dict().items()}
    mask = random_mask(net)
    mask.apply(net)
    train_steps(net, OPTIMIZERS[opt](net.parameters()))
    plain = plain_state_dict(net)
    assert sorted(plain) == sorted(keys)
    for name, m in mask.items():
        assert torch.all(plain[name][m == 0] == 0), name
        assert not torch.equal(plain[name][m == 1], before[name][m == 1]), name
        # The stored weight itself is zero, not just hidden by the mask.
        module, _, param = name.rpartition(".")
        assert torch.all(getattr(net.get_submodule(module), f"{param}_orig")[m == 0] == 0), name
    fresh = MLP([1, 8, 8], 5, hidden=[32, 16])
    fresh.load_state_dict(plain)  # strict: the plain dict fits the unpruned architecture


def test_apply_again_replaces_the_mask():
    """A second apply replaces the first mask instead of multiplying into it."""
    net = make_net()
    first, second = random_mask(net, 0.5, seed=3), random_mask(net, 0.2, seed=4)
    second.apply(first.apply(net))
    for name, m in second.items():
        module, _, param = name.rpartition(".")
        assert torch.equal(getattr(net.get_submodule(module), f"{param}_mask"), m), name


@pytest.mark.parametrize("control", [none, shuffle_within_layer, random_same_density])
def test_controls_keep_each_layers_zero_count(control):
    """Every control but dense keeps each param's count of zeros exactly."""
    mask = random_mask(make_net())
    out = control(mask, seed=5)
    assert list(out) == list(mask)
    for name, m in mask.items():
        assert out[name].shape == m.shape
        assert int((out[name] == 0).sum()) == int((m == 0).sum()), name


@pytest.mark.parametrize("control", [shuffle_within_layer, random_same_density])
def test_random_controls_move_zeros_and_follow_the_seed(control):
    """The randomised controls move the zeros, the same way for the same seed and differently for another."""
    mask = random_mask(make_net())
    a, b, c = control(mask, seed=5), control(mask, seed=5), control(mask, seed=6)
    big = "layers.0.weight"
    assert torch.equal(a[big], b[big]) and not torch.equal(a[big], c[big])
    assert not torch.equal(a[big], mask[big])


def test_dense_control_keeps_every_weight():
    """dense: all ones, with the mask's names and shapes."""
    mask = random_mask(make_net())
    out = dense(mask, seed=5)
    assert list(out) == list(mask) and out.zeros() == 0
    assert all(torch.equal(out[n], torch.ones_like(m)) for n, m in mask.items())
