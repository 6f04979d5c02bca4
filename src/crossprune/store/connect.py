"""Connect to the store: point MLflow at it, create a new sqlite store atomically from a migrated template, and
sweep it once per process for the runs of processes that died."""

import glob
import os
import shutil
import sqlite3
from contextlib import closing, nullcontext
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from crossprune.store import locks
from crossprune.store.tracking import say

CONNECTED: set[tuple[str, str]] = set()  # (uri, experiment) this process has set up and swept for dead runs


def connect(tracking: DictConfig) -> None:
    """Point MLflow at the store, create it (once, under a lock) if new, and mark the runs of dead processes FAILED;
    once per process and store (a sweep's later jobs only point MLflow at it). A new experiment on a local sqlite
    store keeps its artifacts beside the database unless tracking.artifacts says."""
    uri, folder = tracking.uri, locks.sqlite_folder(tracking.uri)
    if (uri, tracking.experiment) in CONNECTED and store_exists(uri):
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(tracking.experiment)
        return
    with locks.FileClaim(folder / "locks" / "store.lock") if folder else nullcontext():  # MLflow's migration races
        if folder:
            create_sqlite_store(Path(uri.removeprefix("sqlite:///")))
        mlflow.set_tracking_uri(uri)
        client = MlflowClient()
        if client.get_experiment_by_name(tracking.experiment) is None:
            artifacts = Path(tracking.artifacts or folder / "artifacts").resolve().as_uri() if folder else tracking.artifacts
            made = locks.experiment_id(client, tracking.experiment, artifacts)
            client.set_experiment_tag(made, "mlflow.experimentKind", "custom_model_development")  # UI: training runs
    experiment = mlflow.set_experiment(tracking.experiment)
    claimed = client.get_experiment_by_name(f"{tracking.experiment}.claims")  # earlier versions' claims
    dead = locks.mark_dead_runs(client, [experiment.experiment_id, *([claimed.experiment_id] if claimed else [])])
    if dead:
        say(f"marked {dead} run(s) of processes that died FAILED (tag {locks.FAILURE_TAG} says why)")
    if not folder and (freed := locks.free_dead_claims(client)):  # a local store's claims are file locks: the OS drops them
        say(f"deleted {freed} stage claim(s) of processes that died")
    CONNECTED.add((uri, tracking.experiment))


def store_exists(uri: str) -> bool:
    """Whether the store is there to ask (a sqlite file that does not exist yet holds nothing: it is not made here)."""
    return locks.sqlite_folder(uri) is None or Path(uri.removeprefix("sqlite:///")).exists()


def create_sqlite_store(db: Path) -> None:
    """Create a new sqlite store under a temporary name, then move it into place: a process killed while it is made
    leaves no half-made store behind. MLflow's schema migration (~4 s) runs once per MLflow version on this
    machine, into a template in the user's cache; each new store is a copy of it."""
    remove_leftovers(db)
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
    remove_leftovers(template)
    if not template.exists():
        cache.mkdir(parents=True, exist_ok=True)
        making = cache / f".{template.name}.{os.getpid()}.new"
        MlflowClient(f"sqlite:///{making}").search_experiments(max_results=1)  # MLflow creates the tables on first use
        os.replace(making, template)
    return template


def remove_leftovers(db: Path) -> None:
    """Delete the `.<db name>.<pid>.new` files of processes killed while they made `db` (a live one's stays)."""
    for making in db.parent.glob(f".{glob.escape(db.name)}.*.new"):
        pid = making.name.removeprefix(f".{db.name}.").removesuffix(".new")
        if pid.isdigit() and not pid_alive(int(pid)):
            making.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True
