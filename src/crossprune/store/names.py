"""Run names and descriptions a person can tell apart in the MLflow UI: a parent by what its sweep varies, a stage
by what it depends on, and each parent's description linking every stage run it used."""

import os

from omegaconf import DictConfig

VARIES_ENV = "CROSSPRUNE_SWEEP_VARIES"  # set in each job by the study sweeper: the keys its sweep varies

SHOWN = ("pair", "criterion", "score.data", "prune.sparsity", "seed")  # always in the name, whatever the sweep
HIDDEN = ("study", "tracking.", "paths.", "summary", "hydra", "trainer.progress_bar", "stages", "cache")  # not the experiment


def varying(points: list[dict]) -> list[str]:
    """The keys whose value differs between a sweep's points ({key: value} each), in first-seen order."""
    keys = dict.fromkeys(k for p in points for k in p)
    return [k for k in keys if len({p.get(k) for p in points}) > 1]


def score_data(cfg: DictConfig) -> str:
    """A, B or mix; `none` for data-free criteria, which ignore the score data."""
    return "none" if cfg.criterion.data_free else cfg.score.data


def criterion(cfg: DictConfig, data: str | None = None, asked: bool = False) -> str:
    """`taylor@B`: the criterion and the data it scored on (no data for data-free criteria, unless `asked`: the
    score.data a sweep point set, which tells its parent from its twin on other data)."""
    plain = cfg.criterion.data_free and not asked
    return cfg.criterion.name if plain else f"{cfg.criterion.name}@{data or cfg.score.data}"


def sparsity(cfg: DictConfig) -> str:
    return f"s={cfg.prune.sparsity:g}" + (" structured" if cfg.prune.kind == "structured" else "")


def parent_name(cfg: DictConfig, overrides: list[str] = (), varies: str | None = None) -> str:
    """`digits_split · taylor@B · s=0.9 · seed 1`, plus the other values its sweep varies (`varies`, else as the
    study sweeper set them in the job's environment; e.g. a study's arms), or outside a sweep the other values its
    command line sets."""
    varies = varies if varies is not None else os.environ.get(VARIES_ENV)
    own = [o.lstrip("+~") for o in overrides if "=" in o]
    extra = [o for o in own if not o.startswith((*SHOWN, *HIDDEN)) and (varies is None or o.split("=")[0] in varies.split())]
    return " · ".join([cfg.pair.name, criterion(cfg, asked=True), sparsity(cfg), *extra, f"seed {cfg.seed}"])


def stage_name(stage: str, cfg: DictConfig, data: str | None = None) -> str:
    """`prune · taylor@B · s=0.9 · seed 1`: the stage and the values its own result depends on."""
    pruned = [criterion(cfg, data), sparsity(cfg)]
    own = {"train_a": [cfg.pair.a.name], "teacher_b": [cfg.pair.name], "score": [criterion(cfg, data)], "prune": pruned,
           "finetune_b": pruned, "scratch_b_dense": [cfg.pair.name], "scratch_b_sparse": pruned}[stage]
    return " · ".join([stage, *own, f"seed {cfg.seed}"])


def description(name: str, experiment_id: str, results: list, search: str = "", metric: str = "B/acc") -> str:
    """Markdown for the parent's description: its name, a table linking each stage run, cached or not, and the
    `search` that lists them all in the runs table."""
    def row(r) -> str:
        link = f"[{r.run_id[:8]}](#/experiments/{experiment_id}/runs/{r.run_id})"
        value = f"{r.metrics[metric]:.3f}" if metric in r.metrics else "—"
        return f"| {r.stage} | {link} | {'cached' if r.cached else 'ran'} | {value} |"

    listing = ["", f"All of them in the runs table: search `` {search} ``"] if search else []
    return "\n".join([f"**{name}**", "", f"| stage | run | | {metric} |", "|---|---|---|---|", *map(row, results), *listing])
