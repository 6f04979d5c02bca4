"""The whole experiment under one parent run: train_a → score → prune → finetune_b, plus scratch_b baselines."""

import json
import tempfile
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from crossprune import tracking
from crossprune.data import Pair
from crossprune.stages import finetune_b, prune, scratch_b, score, train_a
from crossprune.stages.context import Context
from crossprune.tracking import Result


def run(cfg: DictConfig, pair: Pair) -> list[Result]:
    tracking.connect(cfg.tracking)
    with (
        tempfile.TemporaryDirectory(prefix="crossprune-") as workdir,
        mlflow.start_run(run_name=f"{cfg.pair.name}/{cfg.criterion.name}", tags={tracking.STAGE_TAG: "pipeline"}),
    ):
        mlflow.log_params(tracking.flat_params(cfg))
        ctx = Context(cfg, pair, Path(workdir))
        trained = train_a.run(ctx)
        scored = score.run(ctx, trained)
        pruned = prune.run(ctx, scored)
        results = [trained, scored, pruned, finetune_b.run(ctx, pruned), scratch_b.run_dense(ctx), scratch_b.run_sparse(ctx, pruned)]
        # Cached stages have no run of their own here: the parent says which run each stage used.
        mlflow.set_tags({f"crossprune.run.{r.stage}": r.run_id for r in results})
        mlflow.set_tags({f"crossprune.cached.{r.stage}": str(r.cached).lower() for r in results})
        mlflow.log_metrics({f"{r.stage}/{k}": v for r in results for k, v in r.metrics.items() if not k.startswith(("train/", "val/"))})
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps({r.stage: r.metrics for r in results}, indent=2, sort_keys=True))
    return results
