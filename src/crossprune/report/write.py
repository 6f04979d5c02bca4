"""The report's files (tables, figures, Markdown, HTML) and the MLflow `report` run that keeps them."""

import io
import time
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import Metric, RunStatus

from crossprune.config.errors import ConfigError, redact
from crossprune.config.writable import unwritable
from crossprune.report import render
from crossprune.report.claims import Judged
from crossprune.report.runs import Store, Unfinished, pipelines, search, unfinished
from crossprune.store.locks import owner_tags
from crossprune.store.provenance import code_state


def writable(out: Path) -> Path:
    """`out` if the report's files can go there; checked before anything is read or written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report.out={out} is a file, not a folder")
    if problem := unwritable(out):
        raise ConfigError(f"report.out={out} cannot be created: {problem}")
    return out


def git() -> dict[str, str]:
    """The commit the report was made at, and whether the checkout had changes (tolerates no git)."""
    commit, dirty = code_state()
    return {"git commit": commit, "git dirty": dirty}


def files(out: Path, study: str, table: pd.DataFrame, judged: Judged, figures: dict[str, Figure],
          min_effect: float, confidence: float, store: Store) -> list[Path]:
    """runs.csv, verdicts.csv, effects.csv, one PNG per figure, report.md and report.html, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    images = {name: png(fig) for name, fig in figures.items()}
    for name, data in images.items():
        (out / f"{name}.png").write_bytes(data)
    csv(table).to_csv(out / "runs.csv", index=False)
    judged.verdicts.to_csv(out / "verdicts.csv", index=False)
    csv(judged.units).to_csv(out / "effects.csv", index=False)
    provenance = {"study": study, "store": redact(store.uri), "experiment id": store.experiment_id, **git()}
    blocks = render.document(study, table, judged, list(images), min_effect, confidence, provenance)
    (out / "report.md").write_text(render.markdown(blocks))
    (out / "report.html").write_text(render.html(blocks, images, f"crossprune report · {study}"))
    return [out / name for name in ("runs.csv", "verdicts.csv", "effects.csv", *(f"{n}.png" for n in images), "report.md", "report.html")]


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Tuples (parsed lists) back to the list repr they were logged as."""
    return frame.apply(lambda col: col.map(lambda v: repr(list(v)) if isinstance(v, tuple) else v))


def log_run(store: Store, paths: list[Path], study: str, min_effect: float, confidence: float,
            left: Unfinished | None = None) -> str:
    """A `report` run in the study's experiment holding the files this report wrote, and the metrics `points` and
    `points_unfinished` (the study's points without a FINISHED parent: `left`, the table's attrs[runs.UNFINISHED],
    or read from the store); returns its id."""
    client = store.client
    left = unfinished(search(store, pipelines(study))) if left is None else left
    tags = {"crossprune.stage": "report", "crossprune.study": study, **owner_tags()}  # killed: the next start marks it
    run = client.create_run(store.experiment_id, run_name=f"report · {study}", tags=tags)
    try:
        client.log_param(run.info.run_id, "report.min_effect", min_effect)
        client.log_param(run.info.run_id, "report.confidence", confidence)
        counts = {"points": left.points, "points_unfinished": left.count,
                  **{f"points_unfinished/{status}": n for status, n in left.statuses.items()}}
        client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in counts.items()])
        for path in paths:  # not the whole folder: files of an earlier report there are not this one's
            client.log_artifact(run.info.run_id, str(path))
    except BaseException:
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run.info.run_id)
    return run.info.run_id
