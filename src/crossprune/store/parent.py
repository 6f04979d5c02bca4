"""The parent run of one pipeline: its tags, what it records once its stages are done, and what it reports (the
summary file, the objective). Light: a pipeline answered from the store (crossprune.store.answer) uses it without torch."""

import json
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from crossprune.config.errors import ConfigError, redact
from crossprune.config.schema import STAGES
from crossprune.store import names, provenance, tracking

JOB_TAG = "crossprune.job"  # the job key (crossprune.store.answer.job_key) of a parent that ran every stage it needed
RUN_TAG, CACHED_TAG = "crossprune.run.", "crossprune.cached."  # + stage: the run each stage used, and whether cached
PARENT_TAG = "crossprune.parent."  # + parent run id, on each stage run a parent used (ran or cached): the UI filters on it


def needed(cfg: DictConfig) -> list[str]:
    """The stages asked for and every stage they read, in pipeline order; train_a always (every instrument reads it)."""
    reads = {
        "teacher_b": [], "score": ["teacher_b"] if cfg.order == "finetune_then_prune" else [], "prune": ["score"],
        "finetune_b": ["prune"] + (["teacher_b"] if cfg.finetune_b.distill.alpha > 0 else []),
        "scratch_b_dense": [], "scratch_b_sparse": ["prune"], "train_a": [],
    }
    wanted, todo = {"train_a"}, list(cfg.stages)
    while todo:
        stage = todo.pop()
        if stage not in wanted:
            wanted.add(stage)
            todo += reads[stage]
    return [s for s in STAGES if s in wanted]


def tags(cfg: DictConfig, sweep: str | None, overrides: list[str]) -> dict[str, str]:
    """What the parent is tagged with when it starts: `sweep` (a multirun's folder) and the job's `overrides` let
    the sweep's table show its points."""
    out = {tracking.STAGE_TAG: "pipeline", "crossprune.criterion": cfg.criterion.name, "crossprune.score_data": names.score_data(cfg),
           "crossprune.order": cfg.order, "crossprune.stages": ",".join(needed(cfg))}
    if cfg.study.name:
        out["crossprune.study"] = cfg.study.name
    if sweep:
        out["crossprune.sweep"] = sweep
    if overrides:
        out["crossprune.overrides"] = redact(" ".join(overrides))[:5000]  # never a password in tracking.uri
    return out


def begin(cfg: DictConfig, process: dict[str, str] | None = None) -> None:
    """The open parent's params and provenance, and the tags of the `process` that runs the stages."""
    tracking.log_batch(mlflow.active_run().info.run_id, {}, provenance.run_tags() | (process or {}), tracking.flat_params(cfg))


def finish(results: list, job: str | None) -> None:
    """Record in the open parent which run each stage used (cached stages have no run of their own here), their
    metrics, a description linking them, and the job key that lets an identical job answer from the store."""
    parent = mlflow.active_run()
    tags = {f"{RUN_TAG}{r.stage}": r.run_id for r in results} | {f"{CACHED_TAG}{r.stage}": str(r.cached).lower() for r in results}
    tags["mlflow.note.content"] = names.description(parent.info.run_name, parent.info.experiment_id, results, parent_filter(parent.info.run_id))
    metrics = {f"{r.stage}/{k}": v for r in results for k, v in r.metrics.items() if not k.startswith(("train/", "val/"))}
    tracking.log_batch(parent.info.run_id, metrics, tags | ({JOB_TAG: job} if job else {}))
    for r in {r.run_id: r for r in results}.values():  # a key of its own per parent: parents sharing a run never race
        tracking.log_batch(r.run_id, {}, {f"{PARENT_TAG}{parent.info.run_id}": "cached" if r.cached else "ran"})


def parent_filter(run_id: str) -> str:
    """The search that lists every stage run a parent used, in the UI's search box or mlflow.search_runs."""
    return f"tags.`{PARENT_TAG}{run_id}` LIKE '%'"


def write_summary(cfg: DictConfig, results: list) -> None:
    """Each stage's metrics as JSON at `summary` (what DVC reads), when set."""
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps({r.stage: r.metrics for r in results}, indent=2, sort_keys=True))


def objective(cfg: DictConfig, results: list) -> float:
    """The value of `objective` (`<stage>/<metric>`, e.g. finetune_b/B/acc) in this run: what an optimising sweeper
    reads; NaN when that stage did not run (only an optimising sweeper reads it)."""
    stage, _, metric = cfg.objective.partition("/")
    ran = {r.stage: r.metrics for r in results}
    if stage not in ran:
        return float("nan")
    found = ran[stage]
    if metric not in found:
        raise ConfigError(f"objective={cfg.objective}: {stage} has no metric {metric} in this run "
                          f"(it has {', '.join(sorted(k for k in found if '/' in k)[:12]) or 'no metrics: add it to stages'})")
    return float(found[metric])
