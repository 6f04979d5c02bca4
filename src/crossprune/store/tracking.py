"""MLflow plumbing: stage keys, the stage cache and one tracked stage run (no torch at import: a pipeline
answered from the store never loads it)."""

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from crossprune import __version__
from crossprune.config.errors import ConfigError, redact
from crossprune.store import locks
from crossprune.store.failures import fail_fast
from crossprune.store.provenance import code_hash

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # artifacts are local copies: no bars
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run" lines: the table says it
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that stops answering fails in seconds
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")  # its retries within ~3 s, not MLflow's 2 + 4 s
logging.getLogger("mlflow").setLevel(logging.WARNING)  # no migration chatter when a store is created
logging.getLogger("urllib3").setLevel(logging.ERROR)  # a retried request is no news; one that fails says so, once
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)  # its traceback of an error it raises: ours says it

STAGE_TAG, KEY_TAG, WEIGHTS_TAG = "crossprune.stage", "crossprune.key", "crossprune.weights_key"
SHA_TAG = "crossprune.sha256"  # {artifact path: sha256}, recorded when written, checked when reused
OPEN_RUNS: set[str] = set()  # runs this process started and has not ended: marked KILLED on Ctrl-C


def say(line: str) -> None:
    """One line on stderr, for what the user must know but that does not stop the run."""
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]crossprune:[/] {escape(redact(line))}", highlight=False)


def step(line: str) -> None:
    """A stage starting, one dim line on stderr: what the time until the next line is spent on."""
    Console(stderr=True, soft_wrap=True).print(f"[dim]▸ {escape(line)}[/]", highlight=False)


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
        client.set_tag(run_id, locks.FAILURE_TAG, f"damaged: {problem}")
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

    def log_model(self, net, example, name: str = "model") -> None:
        """`net` as an MLflow logged model `name` of this run (Models column, registry), with the signature of
        `example` (a few input rows, numpy) and that example. Pickled, with its requirements named: MLflow's default
        torch.export and requirement inference cost seconds to a minute per model (model.safetensors stays the
        format that runs no code when loaded)."""
        import mlflow.pytorch  # noqa: PLC0415 (torch)
        import torch  # noqa: PLC0415
        from mlflow.models import infer_signature  # noqa: PLC0415

        with torch.no_grad():
            out = net.eval()(torch.from_numpy(example)).numpy()
        needs = [f"{p}=={v}" for p in ("torch", "crossprune") if (v := installed(p))]
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # its warning on pickle: said above, once
        mlflow.pytorch.log_model(net, name=name, signature=infer_signature(example, out), input_example=example,
                                 pip_requirements=needs, serialization_format="pickle")


def installed(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def log_batch(run_id: str, metrics: dict[str, float], tags: dict[str, str], params: dict[str, str] | None = None) -> None:
    """Metrics (at step 0, as mlflow.log_metrics logs them), tags and params in one call (MLflow splits it per 100
    params or tags): a round trip each on a server."""
    now = int(time.time() * 1000)
    MlflowClient().log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                             params=[Param(k, v) for k, v in (params or {}).items()], tags=[RunTag(k, str(v)) for k, v in tags.items()])


class StageFailed(ConfigError):
    """A stage that cannot go on because of what its data or weights did (its loss diverged, a layer lost every
    weight): one line, the run FAILED with the reason in crossprune.failure. A sweep records the point and goes on."""


@contextmanager
def tracked(run_name: str, tags: dict[str, str], nested: bool = False, system_metrics: bool = False) -> Iterator[mlflow.ActiveRun]:
    """mlflow.start_run, with the owning process recorded (so a dead one's runs can be marked) and remembered as
    open until it ends; `system_metrics`: MLflow samples CPU, memory (and GPU, with pynvml) while it is open."""
    with mlflow.start_run(run_name=run_name, nested=nested, tags={**tags, **locks.owner_tags()},
                          log_system_metrics=system_metrics or None) as run:
        OPEN_RUNS.add(run.info.run_id)
        try:
            yield run
        except Exception as e:
            fail_fast(e)  # a store that stopped answering: ending this run (and the ones around it) fails at once
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
def stage_run(stage: str, key: str, depends: dict, workdir: Path, name: str | None = None,
              system_metrics: bool = False) -> Iterator[StageRun]:
    """A child run tagged with its stage and key, its params the config it `depends` on (its own keys and its
    upstream stages', nested: config.yaml); once the body succeeds its files in `workdir/<stage>-<key>` are logged
    as artifacts with their sha256s, the run FINISHES, and `run.result` is its Result (no download of what was just
    written). A body that raises leaves the run FAILED; a StageFailed (what the data or weights did) says why in
    crossprune.failure."""
    folder = workdir / f"{stage}-{key}"
    folder.mkdir(parents=True)
    with tracked(name or stage, {STAGE_TAG: stage, KEY_TAG: key}, nested=True, system_metrics=system_metrics) as run:
        config = OmegaConf.create(depends)
        log_batch(run.info.run_id, {}, {}, flat_params(config))  # at the start: a run whose process dies keeps its config
        (folder / "config.yaml").write_text(redact(OmegaConf.to_yaml(config, resolve=True)))  # never a password
        stage_run = StageRun(run.info.run_id, folder)
        try:
            yield stage_run
        except BaseException as e:
            fail_fast(e)
            failed = StageFailed(f"{stage}: {e}") if isinstance(e, FloatingPointError) else e  # a diverged loss: the stage says what happened
            with suppress(Exception):  # what the stage measured before it failed stays on its FAILED run
                stage_run.send(**({locks.FAILURE_TAG: str(failed)} if isinstance(failed, StageFailed) else {}))
            if failed is not e:
                raise failed from e
            raise
        stage_run.send(**{SHA_TAG: json.dumps(sha256s(folder))})  # the digests before the files they describe
        mlflow.log_artifacts(str(folder))
    metrics = MlflowClient().get_run(run.info.run_id).data.metrics
    stage_run.result = Result(stage, key, run.info.run_id, folder, False, metrics)


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config (or a stage's slice of it) flattened to dotted keys, as MLflow params."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = redact(str(node))[:6000]  # a password in tracking.uri is never a param

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    noise = lambda k: k.startswith(("study.grids", "paths.")) or k.endswith(("._target_", "._partial_"))  # noqa: E731
    chosen = {k: out[f"{k}._target_"].rpartition(".")[2] for k in ("model", "train.optimizer") if f"{k}._target_" in out}
    return chosen | {k: v for k, v in out.items() if not noise(k)}  # not the study's arms, where files go, what builds a node
