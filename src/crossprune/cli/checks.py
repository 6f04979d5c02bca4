"""Validate a job before anything runs: the value checks, then the ones that build what a config names: the data, the model, its optimizer and schedule, the criterion, the
control, a trial mask, and the Lightning Trainer (they import torch, scikit-learn and Lightning)."""

import warnings
from functools import partial
from inspect import signature
from typing import Literal, get_args, get_origin

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from crossprune.config.errors import ConfigError, first_line, one_line
from crossprune.config.schema import n_of_m
from crossprune.config.values import check_values, devices, require
from crossprune.data import Pair, build_pair
from crossprune.pruning import prunable, select
from crossprune.pruning.collapse import check_collapse
from crossprune.pruning.select import cap_count
from crossprune.stages.tasks import task_of

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def validate(cfg: DictConfig) -> "Pair":  # noqa: F821 (crossprune.data.Pair: not imported here)
    """Return the data pair if `cfg` can run, else raise ConfigError naming the first problem.

    The checks of values come first and import nothing heavy, so most typos are told in well under a second; the
    checks that build things (below) import torch, scikit-learn and Lightning."""
    check_values(cfg)
    check_trainer(cfg.trainer)
    check_trainer_options(cfg)
    with warnings.catch_warnings():  # torch's warning about a bad setting would be a second line on stderr
        warnings.simplefilter("ignore")
        return check_built(cfg)



def check_built(cfg: DictConfig) -> Pair:
    """Build the data, the model, its optimizer, the criterion and the control, and try the mask on the model."""
    p = cfg.prune
    task = task_of(cfg)
    task.check(cfg)  # the model fits the pair's task (a language model for text), before anything is built
    try:
        pair = build_pair(cfg.pair)
    except MissingMandatoryValue as e:  # a ??? in conf/pair that the command line did not fill
        raise ConfigError(f"pair {cfg.pair.name} needs {e.full_key}: set it on the command line, e.g. {e.full_key}=<path>") from e
    except Exception as e:  # a dataset that cannot be built is bad input, whatever raised
        raise ConfigError(f"pair {cfg.pair.name} cannot be built: {one_line(e.__cause__ or e)}") from e
    require(cfg.finetune_b.head == "reinit" or pair.shared_labels, f"finetune_b.head=keep needs A and B to share labels, and {pair.name} does not")
    for side in ("a", "b") if task.labelled else ():  # a listed class the data lacks: a head unit trained on nothing, accuracy out of k-1
        data = pair[side.upper()]
        seen = set(torch.as_tensor(data.train.y).unique().tolist())
        absent = [c for i, c in enumerate(data.classes) if i not in seen]
        require(not absent, f"pair.{side}.classes={list(data.classes)}: {data.name} has no training samples of class {absent}")
    net = fits(cfg, pair)
    length = pair.a.input_shape[0]
    require(cfg.score.seqlen is None or (hasattr(net, "blocks") and cfg.score.seqlen <= length),
            f"score.seqlen={cfg.score.seqlen} cuts a language model's calibration sequences, at most the data's {length} tokens")
    try:  # an optimizer that cannot be built (a misspelt class, a negative lr) fails when training starts
        optimizer = instantiate(cfg.train.optimizer)(net.parameters())
    except Exception as e:
        raise ConfigError(f"train.optimizer cannot be built: {instantiation_error(e)}") from e
    from crossprune.stages.training import scheduler  # noqa: PLC0415 (Lightning: only once the types are good)

    try:
        if schedule := scheduler(cfg, cfg.train_a.epochs):
            schedule(optimizer)
    except Exception as e:
        raise ConfigError(f"train.scheduler cannot be built: {instantiation_error(e)}") from e
    try:
        if cfg.pair.get("augment"):
            instantiate(cfg.pair.augment)(pair.a.train.take([0]).x[0])
    except Exception as e:
        raise ConfigError(f"pair.augment cannot be built or applied to one sample of A: {instantiation_error(e)}") from e
    params = prunable(net, p)
    require(len(params) > 0, f"model {cfg.model._target_.rpartition('.')[2]} has no layer to prune (the head is not pruned)")
    sizes, cap = [w.numel() for w in params.values()], p.max_layer_sparsity
    reachable = cap is None or p.scope != "global" or sum(cap_count(cap, n) for n in sizes) >= round(p.sparsity * sum(sizes))
    require(reachable, f"prune.max_layer_sparsity={cap} cannot reach prune.sparsity={p.sparsity} on this model")
    unknown = [n for n in p.layers if n not in params and f"{n}.weight" not in params]
    require(p.scope != "layers" or not unknown, f"prune.layers has {unknown}; prunable: {', '.join(params)}")
    if p.pattern:
        m = n_of_m(p.pattern)[1]
        odd = [f"{n} ({w[0].numel()} per row)" for n, w in params.items() if w[0].numel() % m]
        require(not odd, f"prune.pattern={p.pattern} cuts each row into groups of {m}: {odd[0] if odd else ''} is not a multiple of {m}")
    if p.scope != "global" and p.kind == "unstructured":  # counts fixed by layer sizes: a collapse shows now
        trial = select({n: torch.rand(w.shape) for n, w in params.items()}, p.sparsity, p.scope, list(p.layers), None, p.pattern)
        check_collapse(trial, p)
    for key in ("criterion.score", "criterion.method", "control.apply"):  # called only once there are scores and masks: check them now
        try:
            built = instantiate(OmegaConf.select(cfg, key))
            if isinstance(built, partial):  # its keywords must be arguments the function takes, in their Literal's values
                signature(built.func).bind_partial(*built.args, **built.keywords)
                check_choices(built.func, built.keywords)
        except Exception as e:
            raise ConfigError(f"{key} of {key.partition('.')[0]} {cfg[key.partition('.')[0]].name} cannot be built: "
                              f"{instantiation_error(e)}") from e
    return pair


def check_choices(func, keywords: dict) -> None:
    """A keyword whose annotation is a Literal takes one of its values (e.g. taylor's criterion.variant)."""
    params = signature(func).parameters
    for key, value in keywords.items():
        hint = params[key].annotation if key in params else None
        allowed = get_args(hint) if get_origin(hint) is Literal else (value,)
        if value not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(map(str, allowed))}, got {value!r}")


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

    from crossprune.stages.training import trainer_options  # noqa: PLC0415

    options = trainer_options(cfg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = pl.Trainer(**options, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except Exception as e:
        set_ = " ".join(f"trainer.{k}={v}" for k, v in options.items() if k not in ("accelerator", "devices", "deterministic"))
        raise ConfigError(f"trainer options {set_ or ''} are refused by Lightning: {first_line(e)}".replace("  ", " ")) from e
    # DDP runs the command again per process, and each would claim, log and track every stage: a hang on the claims.
    require(trainer.world_size == 1, f"trainer.devices={cfg.trainer.devices} (num_nodes={trainer.num_nodes}) starts {trainer.world_size} "
            "training processes, and crossprune's stages run in one: use trainer.devices=1, and run jobs side by side with "
            "hydra/launcher=joblib")



def fits(cfg: DictConfig, pair: Pair) -> torch.nn.Module:
    """Build the model for A and push one sample of A and of B through it."""
    model = cfg.model._target_.rpartition(".")[2]
    settings = ", ".join(f"model.{k}={v}" for k, v in cfg.model.items() if k != "_target_")
    try:
        net = instantiate(cfg.model, input_shape=pair.a.input_shape, num_classes=pair.a.num_classes).eval()
        with torch.no_grad():  # eval: BatchNorm in training mode cannot normalise one sample's 1×1 maps
            net(pair.a.train.take([0]).x), net.features(pair.b.train.take([0]).x)
    except Exception as e:
        raise ConfigError(f"model {model} does not fit pair {pair.name} ({settings}): {instantiation_error(e)}") from e
    return net
