"""The whole experiment under one parent run: train_a → score → prune → finetune_b, plus scratch_b baselines."""

import json
import tempfile
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from crossprune import tracking
from crossprune.data import Pair
from crossprune.scoring import score_data
from crossprune.stages import prune, score, train_a, train_b
from crossprune.stages.context import Context
from crossprune.tracking import Result


def run(cfg: DictConfig, pair: Pair) -> list[Result]:
    """Run (or reuse) every stage; the Results' metrics stay valid, their files only while this runs."""
    tracking.connect(cfg.tracking)
    tags = {tracking.STAGE_TAG: "pipeline", "crossprune.criterion": cfg.criterion.name, "crossprune.score_data": score_data(cfg)}
    with (
        tempfile.TemporaryDirectory(prefix="crossprune-") as workdir,
        mlflow.start_run(run_name=f"{cfg.pair.name}/{cfg.criterion.name}", tags=tags),
    ):
        mlflow.log_params(tracking.flat_params(cfg))
        ctx = Context(cfg, pair, Path(workdir))
        trained = train_a.run(ctx)
        scored = score.run(ctx, trained)
        pruned = prune.run(ctx, trained, scored)
        results = [
            trained, scored, pruned,
            train_b.finetune_b(ctx, pruned), train_b.scratch_b_dense(ctx), train_b.scratch_b_sparse(ctx, pruned),
        ]
        # Cached stages have no run of their own here: the parent says which run each stage used.
        mlflow.set_tags({f"crossprune.run.{r.stage}": r.run_id for r in results})
        mlflow.set_tags({f"crossprune.cached.{r.stage}": str(r.cached).lower() for r in results})
        mlflow.log_metrics({f"{r.stage}/{k}": v for r in results for k, v in r.metrics.items() if not k.startswith(("train/", "val/"))})
    if cfg.summary:
        Path(cfg.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.summary).write_text(json.dumps({r.stage: r.metrics for r in results}, indent=2, sort_keys=True))
    return results
