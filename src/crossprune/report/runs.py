"""Read a study's pipeline runs from MLflow into one tidy table: a row per (parent run, stage)."""

import ast
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from crossprune.config.errors import ConfigError, first_line
from crossprune.config.schema import STAGES
from crossprune.store.locks import FAILURE_TAG

# A tracking server that does not answer is bad input, not minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store-migration chatter in the report's output

RUN_TAG = "crossprune.run."
NOISE = ("_target_", "_partial_")  # which callable builds a node: one column per choice already says it
RERUN = ("tracking.", "summary", "cache", "trainer.progress_bar", "hydra.")  # differ between reruns of one config
NOT_DESIGN = (*RERUN, "stages", "trainer.", "study.", "report.")  # never a reason for two cells not to match
DEFAULT_CLASSES = 10  # digits and MNIST-1D; a pair that keeps some classes lists them (pair.a.classes)
PAGE = 50_000  # the most runs one search may return
ROW = ["stage", "run_id", "parent_id", "score_data", "order", "chance_A", "chance_B"]  # after the config columns
UNFINISHED = "crossprune.unfinished"  # the key in read()'s table.attrs of its study's Unfinished points
REASONS = 3  # distinct failure reasons an Unfinished keeps


@dataclass(frozen=True)
class Store:
    uri: str
    experiment_id: str
    client: MlflowClient


def open_store(tracking) -> Store:
    """The study's experiment in the MLflow store; a store that is absent or does not answer is bad input."""
    uri = str(tracking.uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"no MLflow store at {uri}")  # sqlite would create an empty one
    try:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(tracking.experiment)
    except Exception as e:
        raise ConfigError(f"cannot read the MLflow store at {uri}: {first_line(e)}") from e
    if experiment is None:
        raise ConfigError(f"no experiment {tracking.experiment} in the MLflow store at {uri}")
    return Store(uri, experiment.experiment_id, client)


@dataclass(frozen=True)
class Unfinished:
    """A study's points (distinct configs) without a FINISHED parent, of `points` in all: how many by the status of
    each one's newest parent (FAILED, KILLED, RUNNING), and the first distinct reasons (`crossprune.failure`)."""

    points: int
    statuses: dict[str, int]
    reasons: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return sum(self.statuses.values())


def read(store: Store, study: str) -> pd.DataFrame:
    """The study's finished pipeline runs (the newest of identical configs), one row per stage each; its points that
    did not finish are in `table.attrs[UNFINISHED]`."""
    try:
        every = search(store, pipelines(study))
    except Exception as e:
        raise ConfigError(f"cannot read the MLflow store at {store.uri}: {first_line(e)}") from e
    parents, left = newest([r for r in every if r.info.status == "FINISHED"]), unfinished(every)
    if not parents:
        raise ConfigError(f"no finished pipeline runs of study {study} in the MLflow store at {store.uri}"
                          + (f" ({said(left)})" if left.count else ""))
    table = tabulate(parents)
    table.attrs[UNFINISHED] = left
    return table


def pipelines(study: str) -> str:
    """The search for a study's pipeline (parent) runs, of any status."""
    return f"tags.`crossprune.study` = '{study}' and tags.`crossprune.stage` = 'pipeline'"


def unfinished(parents: list) -> Unfinished:
    """The points of `parents` (any status) that no FINISHED parent answers: a point that failed, then finished when
    rerun, finished; one whose reruns all failed counts once, with its newest parent's status."""
    finished = {point(r) for r in parents if r.info.status == "FINISHED"}
    left = [r for r in newest(parents) if point(r) not in finished]  # newest first
    reasons = dict.fromkeys(r.data.tags[FAILURE_TAG] for r in left if r.info.status == "FAILED" and FAILURE_TAG in r.data.tags)
    return Unfinished(len({point(r) for r in parents}), dict(Counter(r.info.status for r in left)), tuple(reasons)[:REASONS])


def said(left: Unfinished) -> str:
    """`2 of 12 points of this study did not finish (1 FAILED, 1 KILLED)`: FAILED and KILLED always, any other
    status where a point has it."""
    counts = {"FAILED": 0, "KILLED": 0} | left.statuses
    return (f"{left.count} of {left.points} point{'s' * (left.points != 1)} of this study did not finish ("
            + ", ".join(f"{n} {status}" for status, n in counts.items() if n or status in ("FAILED", "KILLED")) + ")")


def tabulate(parents: list) -> pd.DataFrame:
    """Parent runs to the tidy table: config columns, then ROW, then every metric name (sorted)."""
    configs = [parse_params(run.data.params) for run in parents]
    rows = [row for run, config in zip(parents, configs) for row in stage_rows(run, config)]
    config = list(dict.fromkeys(k for c in configs for k in c if k != "order"))
    table = pd.DataFrame(rows)
    metrics = sorted(set(table.columns) - set(config) - set(ROW))
    return table.reindex(columns=[*config, *ROW, *metrics])


def search(store: Store, query: str) -> list:
    """Every run that matches, page by page: one query for the whole study."""
    runs, token = [], None
    while True:
        page = store.client.search_runs([store.experiment_id], query, max_results=PAGE, page_token=token,
                                        order_by=["attributes.start_time DESC"])
        runs += page
        if not (token := page.token):
            return runs


def newest(parents: list) -> list:
    """One parent per config: a rerun of the same study point replaces the older run."""
    seen, kept = set(), []
    for run in sorted(parents, key=lambda r: r.info.start_time, reverse=True):
        if (identity := point(run)) not in seen:
            seen.add(identity)
            kept.append(run)
    return kept


def point(run) -> tuple:
    """A parent's study point: its params less those that differ between reruns (a parent that died before logging
    its params is a point of its own)."""
    return tuple(sorted((k, v) for k, v in run.data.params.items() if not k.startswith(RERUN))) or (run.info.run_id,)


def stage_rows(run, config: dict) -> list[dict]:
    """The parent's config, once for every stage it used, with that stage's metrics (stage prefix dropped)."""
    tags, metrics = run.data.tags, run.data.metrics
    used = {s for s in tags.get("crossprune.stages", "").split(",") if s}
    used |= {k.removeprefix(RUN_TAG) for k in tags if k.startswith(RUN_TAG)}
    rank = {s: i for i, s in enumerate(STAGES)}
    identity = {
        "run_id": None, "parent_id": run.info.run_id,
        "score_data": tags.get("crossprune.score_data", config.get("score.data")),
        "order": tags.get("crossprune.order", config.get("order")),
        "chance_A": metrics.get("train_a/A/chance", chance(config, "a")),  # logged by train_a; older runs: 1/classes
        "chance_B": metrics.get("train_a/B/chance", chance(config, "b")),
    }
    return [
        {**config, **identity, "stage": stage, "run_id": tags.get(RUN_TAG + stage),
         **{k.removeprefix(f"{stage}/"): v for k, v in metrics.items() if k.startswith(f"{stage}/")}}
        for stage in sorted(used, key=lambda s: (rank.get(s, len(rank)), s))
    ]


def config_columns(table: pd.DataFrame) -> list[str]:
    """The config columns: everything before `stage`."""
    return list(table.columns[: table.columns.get_loc("stage")])


def design_columns(table: pd.DataFrame) -> list[str]:
    """What makes two rows the same experiment cell: the config less what never differs by design, and the order."""
    return [c for c in config_columns(table) if not c.startswith(NOT_DESIGN)] + ["order"]


def parse_params(params: dict[str, str]) -> dict:
    """MLflow's string params back to numbers, booleans and tuples; `model` (`model._target_` in runs before 0.2)
    is the model's class name."""
    config = {"model": params["model._target_"].rpartition(".")[2]} if "model._target_" in params else {}
    for key in sorted(params):
        if not any(n in key for n in NOISE):
            config[key] = parse(params[key])
    return config


def parse(text: str):
    """A param's value: a Python literal when it is one (lists as hashable tuples), else the string."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return freeze(value) if isinstance(value, int | float | bool | list | tuple | type(None)) else text


def freeze(value):
    return tuple(freeze(v) for v in value) if isinstance(value, list | tuple) else value


def chance(config: dict, side: str) -> float:
    """Accuracy of guessing on A or B: one over its number of classes."""
    classes = config.get(f"pair.{side}.classes")
    return 1 / (len(classes) if isinstance(classes, tuple) and classes else DEFAULT_CLASSES)


def history(store: Store, run_id: str, metric: str = "val/acc") -> list[tuple[int, float]]:
    """One stage run's per-epoch metric as (step, value): the only per-run query, for the curve plot."""
    return [(m.step, m.value) for m in store.client.get_metric_history(run_id, metric)]
