"""The checks of a composed config that build nothing (keys, types, ranges, the store, the output paths); every
problem is one ConfigError line."""

from omegaconf import DictConfig, OmegaConf

from crossprune.config.errors import ConfigError
from crossprune.config.schema import (
    ORDERS,
    SCOPES,
    STAGES,
    unknown_key_message,
    unknown_keys,
)
from crossprune.config.writable import check_output, check_store


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_values(cfg: DictConfig) -> None:
    """The checks that build nothing: keys, types, ranges, the store and the output paths."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0]))
    check_pruning(cfg)
    check_run(cfg)
    stage, _, metric = cfg.objective.partition("/")
    require(stage in STAGES and metric, f"objective must be <stage>/<metric> of one of {', '.join(STAGES)}, e.g. finetune_b/B/acc; got {cfg.objective!r}")
    check_model(cfg.model)
    check_output("summary", cfg.summary)
    check_output("report.out", cfg.report.out, folder=True)
    require(bool(cfg.tracking.experiment), "tracking.experiment must be a name, got nothing")
    check_store(cfg.tracking)


def check_pruning(cfg: DictConfig) -> None:
    """prune.* and how it combines with the criterion and the control."""
    p = cfg.prune
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
    require(not (p.include_head and cfg.finetune_b.head == "reinit"), "prune.include_head=true needs finetune_b.head=keep")


def check_run(cfg: DictConfig) -> None:
    """Seeds, stages and order, and the settings of scoring, training and evaluation."""
    s = cfg.score
    require(s.data in ("A", "B", "mix"), f"score.data must be A, B or mix, got {s.data}")
    require(0 <= s.mix <= 1, f"score.mix must be in [0, 1], got {s.mix}")
    require(s.batches >= 1 and s.batch_size >= 1, "score.batches and score.batch_size must be at least 1")
    require(cfg.train_a.epochs >= 1 and cfg.finetune_b.epochs >= 0, "train_a.epochs must be >= 1 and finetune_b.epochs >= 0")
    for key in ("seed", "data_seed"):
        require(isinstance(cfg[key], int) and cfg[key] >= 0, f"{key} must be an integer >= 0, got {cfg[key]!r}")
    require(cfg.train.batch_size >= 1, f"train.batch_size must be >= 1, got {cfg.train.batch_size}")
    require(cfg.eval.probe.C > 0, f"eval.probe.C must be > 0 (the probe's inverse regularisation), got {cfg.eval.probe.C}")
    require(cfg.eval.probe.max_iter >= 1, f"eval.probe.max_iter must be >= 1, got {cfg.eval.probe.max_iter}")
    require(cfg.eval.batch_size >= 1, f"eval.batch_size must be >= 1, got {cfg.eval.batch_size}")
    cap = cfg.eval.max_samples
    require(cap is None or cap >= 10, f"eval.max_samples must be null (all rows) or at least 10, got {cap}")
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


def devices(d) -> int | list[int] | str | None:
    """Lightning's `devices` as a count, device ids or auto; None for a form it does not take ("2" is a count, "0,1" ids)."""
    if d == "auto":
        return d
    if isinstance(d, str):
        parts = [x.strip() for x in d.split(",") if x.strip()]
        if not parts or not all(x.lstrip("-").isdigit() for x in parts):
            return None
        d = [int(x) for x in parts] if "," in d else int(parts[0])
    if type(d) is int:  # not bool
        return d if d >= 1 or d == -1 else None
    ids = list(d) if OmegaConf.is_list(d) else []
    return ids if ids and all(type(i) is int and i >= 0 for i in ids) else None


def check_model(model: DictConfig) -> None:
    """Layer widths (model.hidden, model.channels) are a non-empty list of positive integers."""
    for key, value in model.items():
        if OmegaConf.is_list(value) and all(isinstance(v, int) for v in value):
            require(len(value) > 0, f"model.{key}=[] leaves the model no layer to prune: give it one, e.g. model.{key}=[64]")
            require(all(v >= 1 for v in value), f"model.{key} must hold widths >= 1, got {list(value)}")


