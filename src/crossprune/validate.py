"""Check a composed config before anything is trained or tracked; every problem is one ConfigError line."""

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from crossprune.data import Pair, build_pair
from crossprune.errors import ConfigError, first_line, one_line
from crossprune.pruning import SCOPES, Mask, prunable, select
from crossprune.pruning.select import cap_count
from crossprune.stages import ORDERS, STAGES


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> Pair:
    """Return the data pair if `cfg` can run, else raise ConfigError naming the first problem."""
    p, s = cfg.prune, cfg.score
    require(isinstance(p.sparsity, float | int) and 0 <= p.sparsity < 1, f"prune.sparsity must be in [0, 1), got {p.sparsity}")
    require(p.scope in SCOPES, f"prune.scope must be one of {', '.join(SCOPES)}, got {p.scope}")
    require(p.kind in ("unstructured", "structured"), f"prune.kind must be unstructured or structured, got {p.kind}")
    require(p.scope != "layers" or len(p.layers) > 0, "prune.scope=layers needs prune.layers=[...]")
    cap = p.max_layer_sparsity
    require(cap is None or 0 < cap <= 1, f"prune.max_layer_sparsity must be in (0, 1], got {cap}")
    require(p.rounds >= 1 and p.round_epochs >= 0, "prune.rounds must be >= 1 and prune.round_epochs >= 0")
    require(p.round_data in ("A", "B"), f"prune.round_data must be A or B, got {p.round_data}")
    require(p.rounds == 1 or cfg.control.name == "none", "controls apply to one-shot masks: use prune.rounds=1")
    require(p.kind == "unstructured" or (cfg.control.name == "none" and p.rounds == 1),
            "prune.kind=structured removes prune.sparsity of each layer's channels in one shot: use prune.rounds=1 and control=none")
    require(p.rounds == 1 or "sparsity" not in cfg.criterion.score,
            f"criterion {cfg.criterion.name} prunes iteratively itself towards prune.sparsity: use prune.rounds=1")
    require(s.data in ("A", "B", "mix"), f"score.data must be A, B or mix, got {s.data}")
    require(0 <= s.mix <= 1, f"score.mix must be in [0, 1], got {s.mix}")
    require(s.batches >= 1 and s.batch_size >= 1, "score.batches and score.batch_size must be at least 1")
    require(cfg.train_a.epochs >= 1 and cfg.finetune_b.epochs >= 0, "train_a.epochs must be >= 1 and finetune_b.epochs >= 0")
    require(isinstance(cfg.seed, int) and isinstance(cfg.data_seed, int), f"seed and data_seed must be integers, got {cfg.seed!r}, {cfg.data_seed!r}")
    require(OmegaConf.is_list(cfg.stages), f"stages must be a list, e.g. stages=[{cfg.stages}], got {cfg.stages!r}")
    unknown = [st for st in cfg.stages if st not in STAGES]
    require(len(cfg.stages) and not unknown, f"stages must be a non-empty list of {', '.join(STAGES)}; unknown: {unknown or 'none given'}")
    require(cfg.order in ORDERS, f"order must be one of {', '.join(ORDERS)}, got {cfg.order}")
    require(cfg.order == "prune_then_finetune" or cfg.criterion.data_free or s.data == "B",
            "order=finetune_then_prune scores the network fine-tuned on B, on B: set score.data=B")
    d = cfg.finetune_b.distill
    require(isinstance(d.alpha, float | int) and 0 <= d.alpha <= 1, f"finetune_b.distill.alpha must be in [0, 1], got {d.alpha}")
    require(isinstance(d.temperature, float | int) and d.temperature > 0, f"finetune_b.distill.temperature must be > 0, got {d.temperature}")
    require(cfg.finetune_b.head in ("reinit", "keep"), f"finetune_b.head must be reinit or keep, got {cfg.finetune_b.head}")
    require(not (p.include_head and cfg.finetune_b.head == "reinit"), "prune.include_head=true needs finetune_b.head=keep")
    try:
        pair = build_pair(cfg.pair)
    except Exception as e:  # a dataset that cannot be built is bad input, whatever raised
        raise ConfigError(f"pair {cfg.pair.name} cannot be built: {one_line(e.__cause__ or e)}") from e
    require(cfg.finetune_b.head == "reinit" or pair.shared_labels, f"finetune_b.head=keep needs A and B to share labels, and {pair.name} does not")
    net = fits(cfg, pair)
    params = prunable(net, p)
    sizes = [w.numel() for w in params.values()]
    reachable = cap is None or p.scope != "global" or sum(cap_count(cap, n) for n in sizes) >= round(p.sparsity * sum(sizes))
    require(reachable, f"prune.max_layer_sparsity={cap} cannot reach prune.sparsity={p.sparsity} on this model")
    unknown = [n for n in p.layers if n not in params and f"{n}.weight" not in params]
    require(p.scope != "layers" or not unknown, f"prune.layers has {unknown}; prunable: {', '.join(params)}")
    if p.scope != "global" and p.kind == "unstructured":  # counts fixed by layer sizes: a collapse shows now
        check_collapse(select({n: torch.rand(w.shape) for n, w in params.items()}, p.sparsity, p.scope, list(p.layers)), p)
    try:
        instantiate(cfg.criterion.score)
        instantiate(cfg.control.apply)
    except Exception as e:
        raise ConfigError(f"criterion {cfg.criterion.name} or control {cfg.control.name} cannot be built: {first_line(e)}") from e
    return pair


class LayerCollapse(ConfigError):
    """A layer would lose every weight."""


def check_collapse(mask: Mask, p: DictConfig) -> None:
    collapsed = [n for n, s in mask.per_param_sparsity().items() if s == 1.0]
    if collapsed and not p.allow_layer_collapse:
        raise LayerCollapse(f"pruning removes every weight of {', '.join(collapsed)} (prune.allow_layer_collapse=true allows it)")


def fits(cfg: DictConfig, pair: Pair) -> torch.nn.Module:
    """Build the model for A and push one sample of A and of B through it."""
    model = cfg.model._target_.rpartition(".")[2]
    try:
        net = instantiate(cfg.model, input_shape=pair.a.input_shape, num_classes=pair.a.num_classes)
        with torch.no_grad():
            net(pair.a.train.x[:1]), net.features(pair.b.train.x[:1])
    except Exception as e:
        raise ConfigError(f"model {model} does not fit pair {pair.name}: {one_line(e)}") from e
    return net
