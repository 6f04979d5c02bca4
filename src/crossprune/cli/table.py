"""What the terminal shows: one table per pipeline run, or one table for a whole sweep."""

import mlflow
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from crossprune.store import connect
from crossprune.store.names import varying

STAGE_METRICS = ("A/acc", "A/fixed_head_acc", "B/acc", "B/fixed_head_acc", "sparsity")
SWEEP_METRICS = ("prune/A/acc", "prune/B/fixed_head_acc", "prune/mask_iou_AB", "finetune_b/B/acc", "scratch_b_dense/B/acc")
MAX_COLUMNS = 4  # swept keys shown as their own columns; more go into one column
NOT_SWEPT = ("study", "tracking.", "summary", "hydra", "trainer.")  # never what a reader compares points by


def console() -> Console:
    return Console(width=max(Console().width, 110))


def print_pipeline(cfg: DictConfig, results: list) -> None:
    table = Table("stage", "run", *STAGE_METRICS, title=f"{cfg.pair.name} · {cfg.criterion.name} · sparsity {cfg.prune.sparsity}")
    for r in results:
        cells = [f"{r.metrics[m]:.3f}" if m in r.metrics else "—" for m in STAGE_METRICS]
        table.add_row(r.stage, r.run_id[:8] + (" (cached)" if r.cached else ""), *cells)
    console().print(table)
    console().print(f"Open the MLflow UI:  {ui_hint(cfg.tracking.uri)}")


def print_sweep(cfg: DictConfig, sweep: str, since_ms: int) -> None:
    """The sweep's parent runs, one row each: the config values that differ between them, then key metrics."""
    connect.connect(cfg.tracking)
    runs = mlflow.search_runs(
        filter_string=f"tags.`crossprune.sweep` = '{sweep}' and attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time ASC"], output_format="list", max_results=50_000,
    )
    if not runs:
        return
    points = [dict(o.split("=", 1) for o in r.data.tags.get("crossprune.overrides", "").split() if "=" in o) for r in runs]
    swept = [k for k in varying(points) if not k.startswith(NOT_SWEPT)]  # what the sweep varies, in its own order
    metrics = [m for m in SWEEP_METRICS if any(m in r.data.metrics for r in runs)]
    headers = [m.replace("/", "\n", 1) for m in metrics]  # stage over metric: narrow columns stay readable
    wide = len(swept) > MAX_COLUMNS  # a study's union of grids varies many keys: one wrapped column of them
    table = Table(*(["point"] if wide else swept), *headers, title=f"{len(runs)} points · {sweep}")
    for r, p in zip(runs, points):
        values = [f"{k}={p[k]}" for k in swept if k in p] if wide else [p.get(k, "—") for k in swept]
        cells = [f"{r.data.metrics[m]:.3f}" if m in r.data.metrics else "—" for m in metrics]
        table.add_row(*([" ".join(values)] if wide else values), *cells)
    console().print(table)
    console().print(f"Open the MLflow UI:  {ui_hint(cfg.tracking.uri)}")


def ui_hint(uri: str) -> str:
    """The command that shows this store: `mlflow ui` for a local database, the server's own address otherwise."""
    return f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
