"""A job whose pipeline already FINISHED, every stage run it used still FINISHED, answers from the store: a new
parent that records those runs as cached, without loading the data, torch or Lightning. Its artifacts are not read
(no stage needs them); a stage that does need them later checks their sha256 as always."""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from crossprune import __version__
from crossprune.config.schema import STAGES
from crossprune.store import connect, names, parent, tracking
from crossprune.store.provenance import code_hash, file_stats

NOT_RESULTS = ("study", "tracking", "paths", "summary", "report", "objective", "cache")  # keys no stage's result depends on


@dataclass
class Answered:
    """A stage as the store gives it (the fields of tracking.Result the summary, description and objective read)."""

    stage: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    cached: bool = True


def job_key(cfg: DictConfig) -> str | None:
    """Hash of what the job's results depend on: the config but its bookkeeping keys, the package's version and code,
    and the stat of every file the data and model name (file_stats). None when a value is unset (??? in a pair)."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except Exception:  # the pipeline itself says what is missing, in one line
        return None
    for key in NOT_RESULTS:
        plain.pop(key, None)
    plain.get("trainer", {}).pop("progress_bar", None)
    files = files_state([plain.get("pair"), plain.get("model")])
    return hashlib.sha256(json.dumps([__version__, code_hash(), plain, files], sort_keys=True, default=str).encode()).hexdigest()[:16]


def files_state(node) -> list:
    """(path, size, mtime, inode, ctime) of every file a string in `node` names, folders walked: data replaced or
    rewritten at the same path, even with its mtime set back, is a new job. The stage keys hash the data itself;
    this must not read it."""
    if isinstance(node, dict):
        return [f for v in node.values() for f in files_state(v)]
    if isinstance(node, list):
        return [f for v in node for f in files_state(v)]
    if not isinstance(node, str) or node in ("", ".", "..") or not Path(node).exists():
        return []
    return file_stats(Path(node).resolve())


def find(cfg: DictConfig) -> tuple[Run, dict[str, Run]] | None:
    """The newest FINISHED parent of this job and the stage runs it used (pipeline order), if every one of them is
    still FINISHED; else None, and the pipeline runs (a stage run marked FAILED or deleted since is run again)."""
    key = job_key(cfg) if cfg.cache else None
    if key is None or not connect.store_exists(cfg.tracking.uri):
        return None
    try:
        return newest_finished(MlflowClient(cfg.tracking.uri), cfg.tracking.experiment, key)
    except Exception:  # a store this cannot read (an old schema, a server error): the pipeline's path says what is wrong
        return None


def newest_finished(client: MlflowClient, experiment_name: str, key: str) -> tuple[Run, dict[str, Run]] | None:
    """find's query: the newest FINISHED parent with job `key`, if its stage runs are all still FINISHED."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    ids = [experiment.experiment_id]
    newest = client.search_runs(ids, f"tags.`{parent.JOB_TAG}` = '{key}' and attributes.status = 'FINISHED'",
                                max_results=1, order_by=["attributes.start_time DESC"])
    if not newest:
        return None
    used = {k.removeprefix(parent.RUN_TAG): v for k, v in newest[0].data.tags.items() if k.startswith(parent.RUN_TAG)}
    listed = ", ".join(f"'{run_id}'" for run_id in set(used.values()))
    runs = {r.info.run_id: r for r in client.search_runs(ids, f"attributes.run_id IN ({listed}) and attributes.status = 'FINISHED'",
                                                         max_results=len(used))}
    if not used or not set(used.values()) <= runs.keys():
        return None
    return newest[0], {s: runs[used[s]] for s in STAGES if s in used}


def reply(cfg: DictConfig, found: tuple[Run, dict[str, Run]], sweep: str | None, overrides: list[str],
          varies: str | None = None) -> list[Answered]:
    """A new parent for this job that records the found stage runs as cached, as a fully cached pipeline would
    (`varies`: the keys its sweep varies, for its name, when the job's own environment does not say)."""
    old, stage_runs = found
    results = [Answered(stage, r.info.run_id, r.data.metrics) for stage, r in stage_runs.items()]
    connect.connect(cfg.tracking)
    with tracking.tracked(names.parent_name(cfg, overrides, varies), parent.tags(cfg, sweep, overrides)) as run:
        parent.begin(cfg)
        MlflowClient().log_inputs(run.info.run_id, datasets=old.inputs.dataset_inputs)  # A and B, as the old one logged them
        parent.finish(results, old.data.tags[parent.JOB_TAG])
    parent.write_summary(cfg, results)
    return results
