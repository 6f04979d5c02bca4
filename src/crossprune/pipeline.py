"""The whole experiment under one parent run: train_a → score → prune → finetune_b, plus scratch_b baselines
(and teacher_b where distillation or finetune_then_prune needs it), limited to the stages asked for."""

import json
import tempfile
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from crossprune import names, provenance, tracking
from crossprune.data import Pair
from crossprune.errors import ConfigError
from crossprune.scoring import score_data
from crossprune.stages import STAGES, prune, score, train_a, train_b
from crossprune.stages.context import Context
from crossprune.tracking import Result


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


def run(cfg: DictConfig, pair: Pair, sweep: str | None = None, overrides: list[str] = ()) -> list[Result]:
    """Run (or reuse) the needed stages; the Results' metrics stay valid, their files only while this runs.
    `sweep` (a multirun's folder) and the job's `overrides` tag the parent, so the sweep's table can show its points."""
    tracking.connect(cfg.tracking)
    stages = needed(cfg)
    tags = {tracking.STAGE_TAG: "pipeline", "crossprune.criterion": cfg.criterion.name, "crossprune.score_data": score_data(cfg),
            "crossprune.order": cfg.order, "crossprune.stages": ",".join(stages)}
    if cfg.study.name:
        tags["crossprune.study"] = cfg.study.name
    if sweep:
        tags["crossprune.sweep"] = sweep
    if overrides:
        tags["crossprune.overrides"] = " ".join(overrides)[:5000]
    try:
        with tempfile.TemporaryDirectory(prefix="crossprune-") as workdir, tracking.tracked(names.parent_name(cfg, overrides), tags):
            ctx = Context(cfg, pair, Path(workdir))
            try:
                results = run_stages(ctx, stages)
            finally:
                ctx.release()  # a claim left by a stage that failed between looking up its key and tracking it
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl-C (inside fit, Lightning turns it into SystemExit(1))
        tracking.say(f"interrupted: {tracking.kill_open_runs()} open run(s) marked KILLED")
        raise SystemExit(130) from e
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps({r.stage: r.metrics for r in results}, indent=2, sort_keys=True))
    return results


def objective(cfg: DictConfig, results: list[Result]) -> float:
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


def run_stages(ctx: Context, stages: list[str]) -> list[Result]:
    """Run (or reuse) `stages` in order under the open parent run, which then records what each stage gave."""
    cfg = ctx.cfg
    mlflow.log_params(tracking.flat_params(cfg))
    mlflow.set_tags(provenance.run_tags())
    tracking.log_datasets(ctx.pair)
    done = {"train_a": train_a.run(ctx)}
    if "teacher_b" in stages:
        done["teacher_b"] = train_b.teacher_b(ctx, done["train_a"])
    source = done["teacher_b"] if cfg.order == "finetune_then_prune" else done["train_a"]  # the network to prune
    if "score" in stages:
        done["score"] = score.run(ctx, source)
    if "prune" in stages:
        # Scoring on A and on B, to compare the masks they give (the same run for data-free criteria).
        on = {d: done["score"] if score_data(cfg) in (d, "none") else score.run(ctx, source, d) for d in "AB"}
        done["prune"] = prune.run(ctx, done["score"], on["A"], on["B"])
    if "finetune_b" in stages:
        done["finetune_b"] = train_b.finetune_b(ctx, done["prune"], done.get("teacher_b") if cfg.finetune_b.distill.alpha > 0 else None)
    if "scratch_b_dense" in stages:
        done["scratch_b_dense"] = train_b.scratch_b_dense(ctx, done["train_a"])
    if "scratch_b_sparse" in stages:
        done["scratch_b_sparse"] = train_b.scratch_b_sparse(ctx, done["prune"])
    results = list(done.values())
    # Cached stages have no run of their own here: the parent says which run each stage used.
    mlflow.set_tags({f"crossprune.run.{r.stage}": r.run_id for r in results})
    mlflow.set_tags({f"crossprune.cached.{r.stage}": str(r.cached).lower() for r in results})
    mlflow.log_metrics({f"{r.stage}/{k}": v for r in results for k, v in r.metrics.items() if not k.startswith(("train/", "val/"))})
    parent = mlflow.active_run()
    mlflow.set_tag("mlflow.note.content", names.description(parent.info.run_name, parent.info.experiment_id, results))
    return results
