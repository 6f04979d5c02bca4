"""The checks of a composed config that build nothing (keys, types, ranges, the store, the output paths); every
problem is one ConfigError line."""

from omegaconf import DictConfig, OmegaConf

from crossprune.config.errors import ConfigError
from crossprune.config.schema import ORDERS, SCOPES, STAGES, n_of_m, unknown_key_message, unknown_keys
from crossprune.config.writable import check_output, check_store


MAX_EXPERIMENT = 256 - len(".claims")
MIN_TEMPERATURE = 0.1  # below it logits / T overflow float32 and T² · KL underflows: distillation silently vanishes
PARTS = {"criterion": ("name", "data_free"), "control": ("name", "apply")}  # what the stages read of each (and below)
MODEL_STAGES = ("teacher_b", "finetune_b", "scratch_b_dense", "scratch_b_sparse")  # the stages that train a network on B
POSITIVE = ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps", "num_nodes")  # trainer.*, >= 1


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_values(cfg: DictConfig) -> None:
    """The checks that build nothing: keys, types, ranges, the store and the output paths."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0]))
    check_parts(cfg)
    check_pruning(cfg)
    check_run(cfg)
    check_trainer_values(cfg.trainer)
    stage, _, metric = cfg.objective.partition("/")
    require(stage in STAGES and metric, f"objective must be <stage>/<metric> of one of {', '.join(STAGES)}, e.g. finetune_b/B/acc; got {cfg.objective!r}")
    check_model(cfg.model)
    check_output("summary", cfg.summary)
    check_output("report.out", cfg.report.out, folder=True)
    require(bool(cfg.tracking.experiment), "tracking.experiment must be a name, got nothing")
    long = len(str(cfg.tracking.experiment))  # MLflow's databases hold 256 characters; the claims add `.claims`
    require(long <= MAX_EXPERIMENT, f"tracking.experiment must be at most {MAX_EXPERIMENT} characters, got {long}")
    odd = [s for s in cfg.tracking.log_models if s not in MODEL_STAGES]  # else a typo logs no model, silently
    require(not odd, f"tracking.log_models names stages whose network becomes an MLflow logged model, of "
            f"{', '.join(MODEL_STAGES)} (or [] for none); got {odd}")
    check_store(cfg.tracking)


def check_parts(cfg: DictConfig) -> None:
    """The criterion and the control have what the stages read of them (a `~criterion.score` removes it), and
    criterion.score's rounds (synflow's) are a count."""
    criterion = cfg.criterion
    require("score" in criterion or "method" in criterion, f"criterion.score is missing: criterion {criterion.get('name', '')} "
            f"needs a score: (a criterion) or a method: (a pruning method, e.g. sparsegpt); see conf/criterion/")
    require(not ("score" in criterion and "method" in criterion),
            f"criterion {criterion.get('name', '')} names both score: and method:; a criterion is one or the other")
    for part, keys in (PARTS | {"criterion": (*PARTS["criterion"], "score" if "score" in criterion else "method")}).items():
        for key in keys:
            require(key in cfg[part], f"{part}.{key} is missing: {part} {cfg[part].get('name', '')} needs it "
                                      f"(see conf/{part}/); choose a {part} with {part}=<file>".replace("  ", " "))
        built = [k for k in keys if OmegaConf.is_dict(cfg[part][k])]
        for key in built:
            require("_target_" in cfg[part][key], f"{part}.{key} must name what builds it (_target_), got {cfg[part][key]}")
    require(isinstance(cfg.criterion.data_free, bool), f"criterion.data_free must be true or false, got {cfg.criterion.data_free!r}")
    rounds = (cfg.criterion.get("score") or {}).get("rounds", 1)
    require(type(rounds) is int and rounds >= 1, f"criterion.score.rounds must be an integer >= 1, got {rounds!r}")


def check_trainer_values(t: DictConfig) -> None:
    """The Trainer's counts and the gradient clip, which Lightning takes here and refuses (or ignores) only in fit."""
    for key in POSITIVE:
        require(t[key] is None or t[key] >= 1, f"trainer.{key} must be >= 1 (or null for Lightning's default), got {t[key]}")
    clip = t.gradient_clip_val
    require(clip is None or 0 <= clip < float("inf"), f"trainer.gradient_clip_val must be a number >= 0 (or null: no clipping), got {clip}")


def check_pruning(cfg: DictConfig) -> None:
    """prune.* and how it combines with the criterion and the control."""
    p = cfg.prune
    require(isinstance(p.sparsity, float | int) and 0 <= p.sparsity < 1, f"prune.sparsity must be in [0, 1), got {p.sparsity}")
    require(p.scope in SCOPES, f"prune.scope must be one of {', '.join(SCOPES)}, got {p.scope}")
    require(p.kind in ("unstructured", "structured"), f"prune.kind must be unstructured or structured, got {p.kind}")
    require(p.scope != "layers" or len(p.layers) > 0, "prune.scope=layers needs prune.layers=[...]")
    nested = [n for n in p.layers if not isinstance(n, str)]
    require(not nested, f"prune.layers must be a flat list of layer names, e.g. prune.layers=[layers.0], got {OmegaConf.to_container(p.layers)}")
    cap = p.max_layer_sparsity
    require(cap is None or 0 < cap <= 1, f"prune.max_layer_sparsity must be in (0, 1], got {cap}")
    require(p.rounds >= 1 and p.round_epochs >= 0, "prune.rounds must be >= 1 and prune.round_epochs >= 0")
    require(p.round_data in ("A", "B"), f"prune.round_data must be A or B, got {p.round_data}")
    require(p.rounds == 1 or cfg.control.name == "none", "controls apply to one-shot masks: use prune.rounds=1")
    require(p.kind == "unstructured" or (cfg.control.name == "none" and p.rounds == 1),
            "prune.kind=structured removes prune.sparsity of each layer's channels in one shot: use prune.rounds=1 and control=none")
    score = cfg.criterion.get("score") or {}
    sequential = score.get("sequential", False)  # wanda's layer-by-layer calibration
    require(isinstance(sequential, bool), f"criterion.sequential must be true or false, got {sequential!r}")
    require(p.rounds == 1 or "sparsity" not in score or score.get("sequential") is False,
            f"criterion {cfg.criterion.name} prunes iteratively itself towards prune.sparsity: use prune.rounds=1")
    require(not sequential or ((p.scope != "global" or p.pattern is not None) and p.kind == "unstructured"),
            f"criterion {cfg.criterion.name} prunes each layer before it calibrates the next (criterion.sequential=true), "
            f"so it needs a per-layer cut: prune.scope=row (the paper's), layerwise or layers with prune.kind=unstructured, "
            f"or criterion.sequential=false for one shot; got prune.scope={p.scope}, prune.kind={p.kind}")
    require(not (p.include_head and cfg.finetune_b.head == "reinit"), "prune.include_head=true needs finetune_b.head=keep")
    one_shot = p.kind == "unstructured" and p.rounds == 1 and not p.include_bias
    require(not cfg.criterion.get("method") or one_shot,
            f"criterion {cfg.criterion.name} is a pruning method (it updates the weights it keeps, in one shot): "
            f"use prune.kind=unstructured, prune.rounds=1 and prune.include_bias=false")
    if p.pattern is not None:
        try:
            n, m = n_of_m(p.pattern)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        require(abs(p.sparsity - n / m) < 1e-9, f"prune.pattern={p.pattern} prunes {n} of every {m} weights: set prune.sparsity={n / m:g}")
        require(one_shot and p.scope != "layers", f"prune.pattern={p.pattern} cuts every row of every layer in one shot: "
                "use prune.kind=unstructured, prune.rounds=1, prune.include_bias=false and a scope other than layers")


def check_run(cfg: DictConfig) -> None:
    """Seeds, stages and order, and the settings of scoring, training and evaluation."""
    s = cfg.score
    require(s.data in ("A", "B", "mix"), f"score.data must be A, B or mix, got {s.data}")
    require(s.split in ("train", "val"), f"score.split must be train (the rows train_a trained on) or val, got {s.split}")
    require(0 <= s.mix <= 1, f"score.mix must be in [0, 1], got {s.mix}")
    require(s.batches >= 1 and s.batch_size >= 1, "score.batches and score.batch_size must be at least 1")
    kept = cfg.train_a.epochs == 0 and cfg.model.get("weights")  # a pretrained checkpoint, as it is
    require((cfg.train_a.epochs >= 1 or kept) and cfg.finetune_b.epochs >= 0,
            "train_a.epochs must be >= 1 (0 only keeps the initial model.weights as they are) and finetune_b.epochs >= 0")
    for key, least in (("nsamples", 1), ("seqlen", 2)):
        require(s[key] is None or s[key] >= least, f"score.{key} must be null or at least {least}, got {s[key]}")
    for key in ("seed", "data_seed", "score.seed"):
        value = OmegaConf.select(cfg, key)
        require(isinstance(value, int) and value >= 0, f"{key} must be an integer >= 0, got {value!r}")
    require(cfg.scratch_b.budget in ("E", "B"), f"scratch_b.budget must be E (scratch_b.epochs epochs) or B (the steps of "
            f"train_a + finetune_b), got {cfg.scratch_b.budget!r}")
    require(cfg.scratch_b.epochs >= 0, f"scratch_b.epochs must be >= 0, got {cfg.scratch_b.epochs}")
    threads = cfg.compute.threads
    require(threads is None or threads >= 1, f"compute.threads must be null (the libraries' defaults) or >= 1, got {threads}")
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
    require(isinstance(d.temperature, float | int) and d.temperature >= MIN_TEMPERATURE,
            f"finetune_b.distill.temperature must be >= {MIN_TEMPERATURE} (the soft loss is scaled by its square; "
            f"Hinton et al. use 1-20), got {d.temperature}")
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


