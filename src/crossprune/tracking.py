"""MLflow plumbing: the store, stage keys, the stage cache and one tracked stage run (no torch at import: a pipeline
answered from the store never loads it)."""

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from crossprune import __version__, claims
from crossprune.errors import ConfigError
from crossprune.provenance import code_hash

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # artifacts are local copies: no bars
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" lines: the table says it
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that stops answering fails in seconds
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no migration chatter when a store is created

STAGE_TAG, KEY_TAG, WEIGHTS_TAG = "crossprune.stage", "crossprune.key", "crossprune.weights_key"
SHA_TAG = "crossprune.sha256"  # {artifact path: sha256}, recorded when written, checked when reused
CONNECTED: set[tuple[str, str]] = set()  # (uri, experiment) this process has set up and swept for dead runs
OPEN_RUNS: set[str] = set()  # runs this process started and has not ended: marked KILLED on Ctrl-C


def connect(tracking: DictConfig) -> None:
    """Point MLflow at the store, create it (once, under a lock) if new, and mark the runs of dead processes FAILED;
    once per process and store (a sweep's later jobs only point MLflow at it). A new experiment on a local sqlite
    store keeps its artifacts beside the database unless tracking.artifacts says."""
    uri, folder = tracking.uri, claims.sqlite_folder(tracking.uri)
    if (uri, tracking.experiment) in CONNECTED and store_exists(uri):
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(tracking.experiment)
        return
    with claims.FileClaim(folder / "locks" / "store.lock") if folder else nullcontext():  # MLflow's migration races
        if folder:
            create_sqlite_store(Path(uri.removeprefix("sqlite:///")))
        mlflow.set_tracking_uri(uri)
        client = MlflowClient()
        if client.get_experiment_by_name(tracking.experiment) is None:
            artifacts = Path(tracking.artifacts or folder / "artifacts").resolve().as_uri() if folder else tracking.artifacts
            made = claims.experiment_id(client, tracking.experiment, artifacts)
            client.set_experiment_tag(made, "mlflow.experimentKind", "custom_model_development")  # UI: training runs
    experiment = mlflow.set_experiment(tracking.experiment)
    claimed = client.get_experiment_by_name(f"{tracking.experiment}.claims")
    dead = claims.mark_dead_runs(client, [experiment.experiment_id, *([claimed.experiment_id] if claimed else [])])
    if dead:
        say(f"marked {dead} run(s) of processes that died FAILED (tag {claims.FAILURE_TAG} says why)")
    CONNECTED.add((uri, tracking.experiment))


def store_exists(uri: str) -> bool:
    """Whether the store is there to ask (a sqlite file that does not exist yet holds nothing: it is not made here)."""
    return claims.sqlite_folder(uri) is None or Path(uri.removeprefix("sqlite:///")).exists()


def create_sqlite_store(db: Path) -> None:
    """Create a new sqlite store under a temporary name, then move it into place: a process killed while it is made
    leaves no half-made store behind. MLflow's schema migration (~4 s) runs once per MLflow version on this
    machine, into a template in the user's cache; each new store is a copy of it."""
    if db.exists():
        return
    making = db.with_name(f".{db.name}.{os.getpid()}.new")
    shutil.copyfile(store_template(), making)
    with closing(sqlite3.connect(making)) as con, con:  # the template's Default experiment pointed at the cache
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                    ((db.parent / "artifacts" / "0").resolve().as_uri(),))
    os.replace(making, db)


def store_template() -> Path:
    """An empty, migrated sqlite store for the installed MLflow, made once (atomically) in the user's cache."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crossprune"
    template = cache / f"mlflow-{mlflow.__version__}-empty-store.db"
    if not template.exists():
        cache.mkdir(parents=True, exist_ok=True)
        making = cache / f".{template.name}.{os.getpid()}.new"
        MlflowClient(f"sqlite:///{making}").search_experiments(max_results=1)  # MLflow creates the tables on first use
        os.replace(making, template)
    return template


def say(line: str) -> None:
    """One line on stderr, for what the user must know but that does not stop the run."""
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]crossprune:[/] {escape(line)}", highlight=False)


def stage_key(stage: str, *parts) -> str:
    """Content hash of what a stage depends on: its config, its upstream keys and the package version and code."""
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    text = json.dumps([stage, __version__, code_hash(), plain], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Result:
    """What a stage hands on: its run, its artifacts on disk and its final metrics."""

    stage: str
    key: str
    run_id: str
    files: Path
    cached: bool
    metrics: dict[str, float] = field(default_factory=dict)

    def load(self, name: str) -> dict:
        from safetensors.torch import load_file  # noqa: PLC0415 (torch)

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


def fetch(stage: str, key: str, run_id: str, workdir: Path) -> Result | None:
    """A cached stage run's Result, its artifacts copied into `workdir/<stage>-<key>` and checked against their
    sha256; None if any is damaged or missing, and then the run is marked FAILED so it is never reused."""
    client = MlflowClient()
    run = client.get_run(run_id)
    try:
        files = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(workdir / f"{stage}-{key}")))
        problem = damage(files, json.loads(run.data.tags.get(SHA_TAG, "null")))
    except Exception as e:  # a store that cannot hand the files over is damage too
        problem = f"its artifacts cannot be read ({type(e).__name__})"
    if problem:
        shutil.rmtree(workdir / f"{stage}-{key}", ignore_errors=True)  # the stage runs again into this folder
        client.set_tag(run_id, claims.FAILURE_TAG, f"damaged: {problem}")
        client.set_terminated(run_id, "FAILED")
        say(f"the cached {stage} run {run_id} is damaged ({problem}): marked FAILED, running {stage} again")
        return None
    return Result(stage, key, run_id, files, True, run.data.metrics)


def sha256s(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def damage(files: Path, recorded: dict[str, str] | None) -> str | None:
    """What is wrong with downloaded artifacts against their recorded sha256s, or None if nothing."""
    if not recorded:
        return "no sha256 recorded for its artifacts"
    found = sha256s(files)
    for name, digest in recorded.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} does not match its sha256"
    return None


class StageRun:
    """The open MLflow run of one stage: collects its metrics and tags, sent in one batch when the stage ends (a
    call per item cost a round trip each on a server), and writes its tensors."""

    def __init__(self, run_id: str, workdir: Path):
        self.run_id, self.workdir, self.metrics, self.tags = run_id, workdir, {}, {}

    def log(self, metrics: dict[str, float]) -> None:
        self.metrics |= metrics

    def tag(self, **tags) -> None:
        self.tags |= {f"crossprune.{k}": str(v) for k, v in tags.items()}

    def send(self, **tags: str) -> None:
        """What was collected, and `tags`, in one batch."""
        log_batch(self.run_id, self.metrics, self.tags | tags)
        self.metrics, self.tags = {}, {}

    def save_json(self, name: str, obj) -> None:
        (self.workdir / f"{name}.json").write_text(json.dumps(obj, indent=2))

    def save(self, name: str, tensors: dict) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415 (torch)

        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(self.workdir / f"{name}.safetensors"))


def log_batch(run_id: str, metrics: dict[str, float], tags: dict[str, str], params: dict[str, str] | None = None) -> None:
    """Metrics (at step 0, as mlflow.log_metrics logs them), tags and params in one call (MLflow splits it per 100
    params or tags): a round trip each on a server."""
    now = int(time.time() * 1000)
    MlflowClient().log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                             params=[Param(k, v) for k, v in (params or {}).items()], tags=[RunTag(k, str(v)) for k, v in tags.items()])


class StageFailed(ConfigError):
    """A stage that cannot go on with this config (e.g. its loss diverged): one line, the run FAILED."""


@contextmanager
def tracked(run_name: str, tags: dict[str, str], nested: bool = False) -> Iterator[mlflow.ActiveRun]:
    """mlflow.start_run, with the owning process recorded (so a dead one's runs can be marked) and remembered as
    open until it ends."""
    with mlflow.start_run(run_name=run_name, nested=nested, tags={**tags, **claims.owner_tags()}) as run:
        OPEN_RUNS.add(run.info.run_id)
        try:
            yield run
        except Exception:
            OPEN_RUNS.discard(run.info.run_id)  # FAILED, as MLflow marks it
            raise
        OPEN_RUNS.discard(run.info.run_id)  # (an interrupt leaves it open, for kill_open_runs)


def kill_open_runs() -> int:
    """Mark every run this process left open KILLED (on Ctrl-C); their count."""
    client, killed = MlflowClient(), len(OPEN_RUNS)
    for run_id in OPEN_RUNS:
        client.set_terminated(run_id, "KILLED")
    OPEN_RUNS.clear()
    return killed


@contextmanager
def stage_run(stage: str, key: str, cfg: DictConfig, workdir: Path, name: str | None = None) -> Iterator[StageRun]:
    """A child run tagged with its stage and key; once the body succeeds its files in `workdir/<stage>-<key>` are
    logged as artifacts with their sha256s, the run FINISHES, and `run.result` is its Result (no download of what
    was just written). A body that raises leaves the run FAILED."""
    folder = workdir / f"{stage}-{key}"
    folder.mkdir(parents=True)
    with tracked(name or stage, {STAGE_TAG: stage, KEY_TAG: key}, nested=True) as run:
        log_batch(run.info.run_id, {}, {}, flat_params(cfg))  # at the start: a run whose process dies keeps its config
        OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
        stage_run = StageRun(run.info.run_id, folder)
        try:
            yield stage_run
        except BaseException as e:
            with suppress(Exception):  # what the stage measured before it failed stays on its FAILED run
                stage_run.send()
            if isinstance(e, FloatingPointError):  # a diverged loss: the stage, not the user's code, says what happened
                raise StageFailed(f"{stage}: {e}") from e
            raise
        stage_run.send(**{SHA_TAG: json.dumps(sha256s(folder))})  # the digests before the files they describe
        mlflow.log_artifacts(str(folder))
    metrics = MlflowClient().get_run(run.info.run_id).data.metrics
    stage_run.result = Result(stage, key, run.info.run_id, folder, False, metrics)


def log_datasets(pair) -> None:
    """A's and B's training splits as MLflow datasets (name, digest, shape) in the open run's Datasets panel; a
    streamed split (too large for memory) as its shapes and the data's own digest, never read whole."""
    import mlflow.data  # noqa: PLC0415 (only a run needs these)
    import numpy as np  # noqa: PLC0415
    from mlflow.data.code_dataset_source import CodeDatasetSource  # noqa: PLC0415
    from mlflow.data.meta_dataset import MetaDataset  # noqa: PLC0415
    from mlflow.tracking.context import registry  # noqa: PLC0415
    from mlflow.types import Schema, TensorSpec  # noqa: PLC0415

    from crossprune.data import Split  # noqa: PLC0415

    for role in "AB":
        data, name = pair[role], f"{role}: {pair[role].name}"
        if isinstance(data.train, Split):
            inputs = mlflow.data.from_numpy(data.train.x.numpy(), targets=data.train.y.numpy(), name=name)
        else:
            shapes = Schema([TensorSpec(np.dtype("float32"), (len(data.train), *data.input_shape), "x"),
                             TensorSpec(np.dtype("int64"), (len(data.train),), "y")])
            inputs = MetaDataset(CodeDatasetSource(registry.resolve_tags()), name=name, digest=data.digest, schema=shapes)
        mlflow.log_input(inputs, context=f"{role} train")


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
    noise = lambda k: k.startswith("study.grids") or k.endswith(("._target_", "._partial_"))  # noqa: E731
    chosen = {k: out[f"{k}._target_"].rpartition(".")[2] for k in ("model", "train.optimizer") if f"{k}._target_" in out}
    return chosen | {k: v for k, v in out.items() if not noise(k)}  # not the study's arms, not what builds a node
