"""Check a composed config before anything is trained or tracked; every problem is one ConfigError line."""

import warnings
from functools import partial
from inspect import signature

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from crossprune.data import Pair, build_pair
from crossprune.errors import ConfigError, first_line, one_line
from crossprune.pruning import SCOPES, Mask, prunable, select
from crossprune.pruning.select import cap_count
from crossprune.schema import unknown_key_message, unknown_keys
from crossprune.stages import ORDERS, STAGES
from crossprune.store_check import check_output, check_store

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: DictConfig) -> Pair:
    """Return the data pair if `cfg` can run, else raise ConfigError naming the first problem."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0]))
    check_pruning(cfg)
    check_run(cfg)
    check_trainer(cfg.trainer)
    stage, _, metric = cfg.objective.partition("/")
    require(stage in STAGES and metric, f"objective must be <stage>/<metric> of one of {', '.join(STAGES)}, e.g. finetune_b/B/acc; got {cfg.objective!r}")
    check_trainer_options(cfg)
    check_model(cfg.model)
    check_output("summary", cfg.summary)
    check_output("report.out", cfg.report.out, folder=True)
    require(bool(cfg.tracking.experiment), "tracking.experiment must be a name, got nothing")
    check_store(cfg.tracking)
    with warnings.catch_warnings():  # torch's warning about a bad setting would be a second line on stderr
        warnings.simplefilter("ignore")
        return check_built(cfg)


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


def check_built(cfg: DictConfig) -> Pair:
    """Build the data, the model, its optimizer, the criterion and the control, and try the mask on the model."""
    p = cfg.prune
    try:
        pair = build_pair(cfg.pair)
    except Exception as e:  # a dataset that cannot be built is bad input, whatever raised
        raise ConfigError(f"pair {cfg.pair.name} cannot be built: {one_line(e.__cause__ or e)}") from e
    require(cfg.finetune_b.head == "reinit" or pair.shared_labels, f"finetune_b.head=keep needs A and B to share labels, and {pair.name} does not")
    net = fits(cfg, pair)
    try:  # an optimizer that cannot be built (a misspelt class, a negative lr) fails when training starts
        optimizer = instantiate(cfg.train.optimizer)(net.parameters())
    except Exception as e:
        raise ConfigError(f"train.optimizer cannot be built: {instantiation_error(e)}") from e
    from crossprune.training import scheduler  # noqa: PLC0415 (Lightning: only once the types are good)

    try:
        if schedule := scheduler(cfg, cfg.train_a.epochs):
            schedule(optimizer)
    except Exception as e:
        raise ConfigError(f"train.scheduler cannot be built: {instantiation_error(e)}") from e
    try:
        if cfg.pair.get("augment"):
            instantiate(cfg.pair.augment)(pair.a.train.x[0])
    except Exception as e:
        raise ConfigError(f"pair.augment cannot be built or applied to one sample of A: {instantiation_error(e)}") from e
    params = prunable(net, p)
    require(len(params) > 0, f"model {cfg.model._target_.rpartition('.')[2]} has no layer to prune (the head is not pruned)")
    sizes, cap = [w.numel() for w in params.values()], p.max_layer_sparsity
    reachable = cap is None or p.scope != "global" or sum(cap_count(cap, n) for n in sizes) >= round(p.sparsity * sum(sizes))
    require(reachable, f"prune.max_layer_sparsity={cap} cannot reach prune.sparsity={p.sparsity} on this model")
    unknown = [n for n in p.layers if n not in params and f"{n}.weight" not in params]
    require(p.scope != "layers" or not unknown, f"prune.layers has {unknown}; prunable: {', '.join(params)}")
    if p.scope != "global" and p.kind == "unstructured":  # counts fixed by layer sizes: a collapse shows now
        check_collapse(select({n: torch.rand(w.shape) for n, w in params.items()}, p.sparsity, p.scope, list(p.layers)), p)
    for key in ("criterion.score", "control.apply"):  # called only once there are scores and masks: check them now
        try:
            built = instantiate(OmegaConf.select(cfg, key))
            if isinstance(built, partial):  # its keywords must be arguments the function takes
                signature(built.func).bind_partial(*built.args, **built.keywords)
        except Exception as e:
            raise ConfigError(f"{key} of {key.partition('.')[0]} {cfg[key.partition('.')[0]].name} cannot be built: "
                              f"{instantiation_error(e)}") from e
    return pair


def instantiation_error(e: Exception) -> str:
    """Why building (hydra.utils.instantiate) or using an object failed, in one line without Hydra's advice on
    HYDRA_FULL_ERROR."""
    if not isinstance(e, InstantiationException):
        return one_line(e)
    if e.__cause__ and "Error in call to target" in str(e):
        return f"{first_line(e).rstrip(':')}: {one_line(e.__cause__)}"
    return first_line(e).split(", set env var HYDRA_FULL_ERROR")[0]


def check_trainer(t: DictConfig) -> None:
    """The accelerator exists on this machine, and the devices are a form Lightning takes."""
    require(t.accelerator in ACCELERATORS, f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {t.accelerator}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    require(t.accelerator not in ("gpu", "cuda") or gpus or (t.accelerator == "gpu" and torch.backends.mps.is_available()),
            f"trainer.accelerator={t.accelerator}: no GPU on this machine (torch.cuda.is_available() is False)")
    require(t.accelerator != "mps" or torch.backends.mps.is_available(),
            "trainer.accelerator=mps: no Apple GPU on this machine (torch.backends.mps.is_available() is False)")
    d = devices(t.devices)
    require(d is not None, f"trainer.devices must be a count (1), a list of device ids ([0, 1]) or auto, got {t.devices!r}")
    require(t.accelerator != "cpu" or d == "auto" or (type(d) is int and d >= 1), f"trainer.devices on cpu is a count of processes, got {t.devices!r}")
    wanted = d if type(d) is int and d >= 1 else max(d) + 1 if isinstance(d, list) else 0
    require(t.accelerator not in ("gpu", "cuda") or wanted <= gpus, f"trainer.devices={t.devices} asks for more GPUs than the {gpus} on this machine")


def check_trainer_options(cfg: DictConfig) -> None:
    """Build the Trainer the stages build, so a value Lightning refuses (precision=bf17) is caught now."""
    import pytorch_lightning as pl  # noqa: PLC0415 (only once the types are good)

    from crossprune.training import trainer_options  # noqa: PLC0415

    options = trainer_options(cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pl.Trainer(**options, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except Exception as e:
        set_ = " ".join(f"trainer.{k}={v}" for k, v in options.items() if k not in ("accelerator", "devices", "deterministic"))
        raise ConfigError(f"trainer options {set_ or ''} are refused by Lightning: {first_line(e)}".replace("  ", " ")) from e


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


class LayerCollapse(ConfigError):
    """A layer would lose every weight."""


def check_collapse(mask: Mask, p: DictConfig) -> None:
    collapsed = [n for n, s in mask.per_param_sparsity().items() if s == 1.0]
    if collapsed and not p.allow_layer_collapse:
        raise LayerCollapse(f"pruning removes every weight of {', '.join(collapsed)} (prune.allow_layer_collapse=true allows it)")


def fits(cfg: DictConfig, pair: Pair) -> torch.nn.Module:
    """Build the model for A and push one sample of A and of B through it."""
    model = cfg.model._target_.rpartition(".")[2]
    settings = ", ".join(f"model.{k}={v}" for k, v in cfg.model.items() if k != "_target_")
    try:
        net = instantiate(cfg.model, input_shape=pair.a.input_shape, num_classes=pair.a.num_classes)
        with torch.no_grad():
            net(pair.a.train.x[:1]), net.features(pair.b.train.x[:1])
    except Exception as e:
        raise ConfigError(f"model {model} does not fit pair {pair.name} ({settings}): {instantiation_error(e)}") from e
    return net
