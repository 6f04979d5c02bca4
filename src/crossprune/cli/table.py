"""What the terminal shows: one table per pipeline run, or one table for a whole sweep."""

import os

import mlflow
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from crossprune.config.errors import redact
from crossprune.store import connect
from crossprune.store.locks import FAILURE_TAG
from crossprune.store.names import varying
from crossprune.store.tracking import say

STAGE_METRICS = ("A/acc", "A/fixed_head_acc", "A/ppl", "B/acc", "B/fixed_head_acc", "B/ppl", "sparsity")
SWEEP_METRICS = ("prune/A/acc", "prune/B/fixed_head_acc", "prune/A/ppl", "prune/B/ppl", "prune/mask_iou_AB", "finetune_b/B/acc",
                 "scratch_b_dense/B/acc")
MAX_COLUMNS = 4  # swept keys shown as their own columns; more go into one column
NOT_SWEPT = ("study", "tracking.", "paths.", "summary", "hydra", "trainer.")  # never what a reader compares points by


def console() -> Console:
    """The terminal's width (a table wraps its cells to fit); a pipe or file gets wide lines, nothing wrapped."""
    plain = Console()
    return plain if plain.is_terminal else Console(width=max(plain.width, 120))


def print_pipeline(cfg: DictConfig, results: list) -> None:
    lm = any("B/ppl" in r.metrics for r in results)  # a language model has perplexities, and no fixed heads
    shown = [m for m in STAGE_METRICS if ("fixed_head" if lm else "/ppl") not in m]
    table = Table("stage", "run", *shown, title=f"{cfg.pair.name} · {cfg.criterion.name} · sparsity {cfg.prune.sparsity}")
    for r in results:
        cells = [f"{r.metrics[m]:.3f}" if m in r.metrics else "—" for m in shown]
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
    points = [dict(o.lstrip("+").split("=", 1) for o in r.data.tags.get("crossprune.overrides", "").split() if "=" in o) for r in runs]
    swept = [k for k in varying(points) if not k.startswith(NOT_SWEPT)]  # what the sweep varies, in its own order
    metrics = [m for m in SWEEP_METRICS if any(m in r.data.metrics for r in runs)]
    headers = [m.replace("/", "\n", 1) for m in metrics]  # stage over metric: narrow columns stay readable
    wide = len(swept) > MAX_COLUMNS  # a study's union of grids varies many keys: one wrapped column of them
    failed = [(r, p) for r, p in zip(runs, points) if r.info.status == "FAILED"]
    values = [Column(h, no_wrap=not wide) for h in (["point"] if wide else swept)]  # a value whole; a header may fold
    columns = [*values, *[Column(h, overflow="fold") for h in [*headers, *(["failed"] if failed else [])]]]
    table = Table(*columns, title=f"{len(runs)} points · {os.path.normpath(sweep)}", show_edge=False)  # no edges: 4 columns more
    for r, p in zip(runs, points):
        values = [f"{k}={p[k]}" for k in swept if k in p] if wide else [p.get(k, "—") for k in swept]
        cells = [f"{r.data.metrics[m]:.3f}" if m in r.data.metrics else "—" for m in metrics]
        why = [failure(r)[0] if r.info.status == "FAILED" else ""] if failed else []
        table.add_row(*map(Text, [" ".join(values)] if wide else values), *cells, *why)  # Text: [layers.0] is no markup
    console().print(table)
    console().print(f"Open the MLflow UI:  {ui_hint(cfg.tracking.uri)}")
    if failed:  # each one's reason, on one line: the sweep still exits 0
        listed = "; ".join(f"{' '.join(f'{k}={p[k]}' for k in swept if k in p) or r.info.run_name}: {failure(r)[1]}" for r, p in failed)
        say(f"{len(failed)} of {len(runs)} points failed: {listed}")


def failure(run) -> tuple[str, str]:
    """The stage a FAILED point stopped at and why (its crossprune.failure), e.g. (`prune`, `pruning removes …`)."""
    reason = run.data.tags.get(FAILURE_TAG, "no reason recorded (see the run in the UI)")
    stage, _, why = reason.partition(": ")
    return (stage, why) if why and " " not in stage else ("?", reason)


def ui_hint(uri: str) -> str:
    """The command that shows this store: `mlflow ui` for a local database, the server's own address otherwise."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # relative: spelt as short as it goes
        uri = f"sqlite:///{os.path.normpath(uri.removeprefix('sqlite:///'))}"
    uri = redact(uri)  # the terminal never shows a password
    return f"open {uri}" if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
