"""The whole experiment under one parent run: train_a → score → prune → finetune_b, plus scratch_b baselines
(and teacher_b where distillation or finetune_then_prune needs it), limited to the stages asked for."""

import tempfile
from pathlib import Path

from omegaconf import DictConfig

from crossprune.data import Pair
from crossprune.stages import prune, score, train_a, train_b
from crossprune.stages.compute import machine, pin_threads
from crossprune.stages.context import Context
from crossprune.stages.datasets import log_datasets
from crossprune.store import answer, connect, names, parent, tracking
from crossprune.store.failures import Terminated, settle, sigterm_raises, store_failure
from crossprune.store.names import score_data
from crossprune.store.locks import FAILURE_TAG
from crossprune.store.tracking import Result, StageFailed


@sigterm_raises()
def run(cfg: DictConfig, pair: Pair, sweep: str | None = None, overrides: list[str] = ()) -> list[Result]:
    """Run (or reuse) the needed stages; the Results' metrics stay valid, their files only while this runs.
    `sweep` (a multirun's folder) and the job's `overrides` tag the parent, so the sweep's table can show its points.
    Ctrl-C or SIGTERM marks the open runs KILLED (exit 130 or 143); a store that fails is one line (StoreError)."""
    try:
        connect.connect(cfg.tracking)
        job = answer.job_key(cfg)  # now: the files the run reads, not whatever is at those paths when it ends
        with tempfile.TemporaryDirectory(prefix="crossprune-") as workdir, tracking.tracked(names.parent_name(cfg, overrides),
                parent.tags(cfg, sweep, overrides), system_metrics=cfg.tracking.get("system_metrics", False)) as run:
            ctx = Context(cfg, pair, Path(workdir))
            try:
                results = run_stages(ctx, parent.needed(cfg), job)
            except StageFailed as e:  # what the data or weights did: the parent FAILED too, saying why
                tracking.log_batch(run.info.run_id, {}, {FAILURE_TAG: str(e)})
                raise
            finally:
                ctx.release()  # a claim left by a stage that failed between looking up its key and tracking it
        parent.write_summary(cfg, results)
    except (KeyboardInterrupt, SystemExit, Terminated) as e:  # Ctrl-C (inside fit, Lightning turns it into SystemExit(1))
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        tracking.say(f"{how}: {tracking.kill_open_runs()} open run(s) marked KILLED")
        raise SystemExit(143 if isinstance(e, Terminated) else 130) from e
    except Exception as e:
        settle()  # MLflow's retries back, for whatever this process does next
        if (failure := store_failure(e, cfg.tracking.uri)) is None:
            raise
        raise failure from e
    return results


def run_stages(ctx: Context, stages: list[str], job: str | None = None) -> list[Result]:
    """Run (or reuse) `stages` in order under the open parent run, which then records what each stage gave and the
    `job` key that lets an identical job answer from the store."""
    cfg = ctx.cfg
    pin_threads(cfg.compute.threads)
    parent.begin(cfg, {f"crossprune.{k}": v for k, v in machine().items()})
    log_datasets(ctx.pair)
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
    parent.finish(results, job)
    return results
