"""MLflow plumbing: the store, stage keys, the stage cache and one tracked stage run."""

import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import Tensor

from crossprune import __version__

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # artifacts are local copies: no bars
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no migration chatter when a store is created

STAGE_TAG, KEY_TAG, WEIGHTS_TAG = "crossprune.stage", "crossprune.key", "crossprune.weights_key"


def connect(tracking: DictConfig) -> None:
    """Point MLflow at the store; a new experiment on a local sqlite store keeps its artifacts beside the db."""
    uri = tracking.uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(tracking.experiment) is None:
        local = uri.startswith("sqlite:") and tracking.artifacts
        mlflow.create_experiment(tracking.experiment, Path(tracking.artifacts).resolve().as_uri() if local else None)
    mlflow.set_experiment(tracking.experiment)


def stage_key(stage: str, *parts) -> str:
    """Content hash of what a stage depends on: its config, its upstream keys and the package version and code."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    text = json.dumps([stage, __version__, code_hash(), plain], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def code_hash() -> str:
    """Hash of the package's sources: an edited criterion or default must not reuse runs made before the edit."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


@dataclass
class Result:
    """What a stage hands on: its run, its artifacts on disk and its final metrics."""

    stage: str
    key: str
    run_id: str
    files: Path
    cached: bool
    metrics: dict[str, float] = field(default_factory=dict)

    def load(self, name: str) -> dict[str, Tensor]:
        return load_file(str(self.files / f"{name}.safetensors"))

    def has(self, name: str) -> bool:
        return (self.files / f"{name}.safetensors").exists()

    def structure(self) -> dict:
        """Model constructor overrides of a structurally pruned network (its smaller widths); {} when dense."""
        path = self.files / "structure.json"
        return json.loads(path.read_text()) if path.exists() else {}


def finished_run(key: str, tag: str = KEY_TAG) -> str | None:
    """The newest FINISHED run whose `tag` is `key`; unfinished or failed runs are never reused."""
    runs = mlflow.search_runs(
        filter_string=f"tags.`{tag}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None


def fetch(stage: str, key: str, run_id: str, workdir: Path) -> Result:
    """A cached stage run's Result, its artifacts copied into `workdir/<stage>-<key>`."""
    files = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(workdir / f"{stage}-{key}")))
    return Result(stage, key, run_id, files, True, MlflowClient().get_run(run_id).data.metrics)


class StageRun:
    """The open MLflow run of one stage: collects metrics, tags and tensors, and logs them in batches."""

    def __init__(self, run_id: str, workdir: Path):
        self.run_id, self.workdir = run_id, workdir

    def log(self, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics)

    def tag(self, **tags) -> None:
        mlflow.set_tags({f"crossprune.{k}": str(v) for k, v in tags.items()})

    def save_json(self, name: str, obj) -> None:
        (self.workdir / f"{name}.json").write_text(json.dumps(obj, indent=2))

    def save(self, name: str, tensors: dict[str, Tensor]) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(self.workdir / f"{name}.safetensors"))


@contextmanager
def stage_run(stage: str, key: str, cfg: DictConfig, workdir: Path) -> Iterator[StageRun]:
    """A child run tagged with its stage and key; once the body succeeds its files in `workdir/<stage>-<key>` are
    logged as artifacts, the run FINISHES, and `run.result` is its Result (no download of what was just written)."""
    folder = workdir / f"{stage}-{key}"
    folder.mkdir(parents=True)
    with mlflow.start_run(run_name=stage, nested=True, tags={STAGE_TAG: stage, KEY_TAG: key}) as run:
        mlflow.log_params(flat_params(cfg))
        OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
        stage_run = StageRun(run.info.run_id, folder)
        yield stage_run
        mlflow.log_artifacts(str(folder))
    metrics = MlflowClient().get_run(run.info.run_id).data.metrics
    stage_run.result = Result(stage, key, run.info.run_id, folder, False, metrics)


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config flattened to dotted keys, as MLflow params."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = str(node)[:6000]

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return {k: v for k, v in out.items() if not k.startswith("study.grids")}  # the whole study: not this run's config
