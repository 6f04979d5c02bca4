"""The config's types: Hydra structured configs, stored in the ConfigStore as `schema`, the base of conf/config.yaml.

Values and their comments stay in conf/; these dataclasses say only what type each key takes (light: no torch)."""

import difflib
from dataclasses import dataclass, field, is_dataclass
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

STAGES = ("train_a", "teacher_b", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse")
ORDERS = ("prune_then_finetune", "finetune_then_prune")
SCOPES = ("global", "layerwise", "row", "layers")  # prune.scope's values (here: checked before torch is imported)


def n_of_m(pattern) -> tuple[int, int]:
    """N and M of prune.pattern N:M, e.g. 2:4 (N pruned of every M consecutive weights of a row)."""
    n, _, m = str(pattern).partition(":")
    if not (n.isdigit() and m.isdigit() and 0 < int(n) < int(m)):
        raise ValueError(f"prune.pattern must be N:M with 0 < N < M, e.g. 2:4 or 4:8, got {pattern!r}")
    return int(n), int(m)
Open = Any  # a node whose keys differ from file to file (the arguments of a _target_): pair, model, criterion, control


@dataclass
class Train:
    batch_size: int = MISSING
    optimizer: Open = MISSING  # a partial torch.optim class: its keys are the optimizer's own
    scheduler: Open = None  # a partial torch.optim.lr_scheduler class, stepped per epoch; null = a constant rate


@dataclass
class TrainA:
    epochs: int = MISSING


@dataclass
class Score:
    data: str = MISSING
    split: str = MISSING  # train | val: which split of the score data the criterion reads
    mix: float = MISSING
    batches: int = MISSING
    batch_size: int = MISSING
    seed: int = MISSING  # the score batches' draw, apart from A's training (default ${seed})
    nsamples: int | None = None  # calibration rows (sequences); null = batches × batch_size
    seqlen: int | None = None  # tokens per calibration sequence (language models); null = the data's length


@dataclass
class Distill:
    alpha: float = MISSING
    temperature: float = MISSING


@dataclass
class FinetuneB:
    epochs: int = MISSING
    head: str = MISSING
    distill: Distill = field(default_factory=Distill)


@dataclass
class ScratchB:
    epochs: int = MISSING  # Scratch-E: epochs on B (default finetune_b.epochs)
    budget: str = MISSING  # E: scratch_b.epochs epochs; B: as many steps as train_a and finetune_b took together


@dataclass
class Compute:
    threads: int | None = MISSING  # torch's intra-op threads (and BLAS's) per job; null = the library defaults


@dataclass
class Probe:
    C: float = MISSING
    max_iter: int = MISSING


@dataclass
class Eval:
    probe: Probe = field(default_factory=Probe)
    batch_size: int = MISSING
    max_samples: int | None = MISSING


@dataclass
class Trainer:
    """Lightning Trainer options; null = Lightning's default. The stages own the rest (epochs, callbacks, logging,
    checkpoints), so those are not here."""

    accelerator: str = MISSING
    devices: Any = MISSING  # a count, a list of ids or auto, as Lightning takes it
    deterministic: bool = MISSING
    progress_bar: bool = MISSING
    precision: Any = None  # 32-true, 16-mixed, bf16-mixed, 64, …
    strategy: str | None = None
    num_nodes: int | None = None
    max_time: Any = None  # DD:HH:MM:SS or {hours: 1}: a training stage's wall-clock limit
    max_steps: int | None = None
    min_epochs: int | None = None
    min_steps: int | None = None
    limit_train_batches: Any = None  # a fraction or a count
    limit_val_batches: Any = None
    overfit_batches: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = None
    log_every_n_steps: int | None = None
    accumulate_grad_batches: int | None = None
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None  # norm | value
    benchmark: bool | None = None
    inference_mode: bool | None = None
    use_distributed_sampler: bool | None = None
    profiler: str | None = None  # simple | advanced | pytorch
    detect_anomaly: bool | None = None
    barebones: bool | None = None
    sync_batchnorm: bool | None = None
    reload_dataloaders_every_n_epochs: int | None = None


@dataclass
class Tracking:
    uri: str = MISSING
    experiment: str = MISSING
    artifacts: str | None = None  # null: beside a local sqlite database, <its folder>/artifacts
    figures: bool = True  # training curves, score histograms, per-layer sparsity as images on each stage run
    system_metrics: bool = False  # MLflow's CPU/memory (GPU with pynvml) samples on every run
    log_models: list[str] = field(default_factory=lambda: ["finetune_b"])  # stages whose network is an MLflow logged model


@dataclass
class Paths:
    root: str = MISSING  # the store, sweep folders and reports all go under it


@dataclass
class Study:
    name: str | None = MISSING
    grids: dict[str, Any] = MISSING


@dataclass
class Report:
    out: str | None = MISSING
    min_effect: float = MISSING
    confidence: float = MISSING


@dataclass
class Prune:
    kind: str = MISSING
    sparsity: float = MISSING
    scope: str = MISSING
    layers: list[str] = MISSING
    max_layer_sparsity: float | None = MISSING
    allow_layer_collapse: bool = MISSING
    include_bias: bool = MISSING
    include_head: bool = MISSING
    rounds: int = MISSING
    round_epochs: int = MISSING
    round_data: str = MISSING
    pattern: str | None = None  # N:M (e.g. 2:4): N of every M consecutive weights of a row


@dataclass
class Config:
    pair: Open = MISSING
    model: Open = MISSING
    criterion: Open = MISSING
    prune: Prune = field(default_factory=Prune)
    control: Open = MISSING
    seed: int = MISSING
    data_seed: int = MISSING
    stages: list[str] = MISSING
    order: str = MISSING
    cache: bool = MISSING
    train: Train = field(default_factory=Train)
    train_a: TrainA = field(default_factory=TrainA)
    score: Score = field(default_factory=Score)
    finetune_b: FinetuneB = field(default_factory=FinetuneB)
    scratch_b: ScratchB = field(default_factory=ScratchB)
    compute: Compute = field(default_factory=Compute)
    eval: Eval = field(default_factory=Eval)
    trainer: Trainer = field(default_factory=Trainer)
    tracking: Tracking = field(default_factory=Tracking)
    paths: Paths = field(default_factory=Paths)
    study: Study = field(default_factory=Study)
    report: Report = field(default_factory=Report)
    summary: str | None = MISSING
    objective: str = MISSING


ConfigStore.instance().store(name="schema", node=Config)


def typed_keys(kind: type = Config) -> dict[str, type]:
    """Full name -> type of every key the schema declares, nested nodes included."""
    keys = {}
    for name, hint in get_type_hints(kind).items():
        keys[name] = hint
        if is_dataclass(hint):
            keys |= {f"{name}.{k}": t for k, t in typed_keys(hint).items()}
    return keys


def unknown_keys(cfg: DictConfig, kind: type = Config, prefix: str = "") -> list[str]:
    """Full names of the keys in the typed nodes of `cfg` that the schema does not declare: Hydra adds a
    `+key=value` to a structured config unchecked."""
    hints = get_type_hints(kind)
    found = []
    for key in cfg.keys():
        if key not in hints:
            found += [] if f"{prefix}{key}" == "hydra" else [f"{prefix}{key}"]  # Hydra's own node sits at the root
        elif is_dataclass(hints[key]) and isinstance(cfg[key], DictConfig):
            found += unknown_keys(cfg[key], hints[key], f"{prefix}{key}.")
    return found


def unknown_key_message(name: str) -> str:
    """The line for a key no typed node has, with the nearest one that exists."""
    parent, _, key = name.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in typed_keys() if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings, n=1)
    hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?" if close else f"keys here: {', '.join(siblings)}"
    return f"unknown key {name} ({hint})"
