"""One stage key, one computation: a process claims a key before computing it, and any other process that wants the
key waits, then reuses the FINISHED run. A local sqlite store uses a file lock, which the OS releases when its
holder dies; any other store records the claim as a registered model whose lease its holder keeps renewing."""

import fcntl
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

HOST_TAG, PROCESS_TAG, FAILURE_TAG = "crossprune.host", "crossprune.process", "crossprune.failure"
CLAIM_TAG, LEASE_TAG = "crossprune.claim", "crossprune.lease_until"


def process_id(pid: int | None = None) -> str:
    """`pid:start-time`: a pid alone may be reused by a later process once its owner dies."""
    pid = pid or os.getpid()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}:{stat.rpartition(')')[2].split()[19]}"  # field 22, starttime
    except OSError:
        return str(pid)


def owner_tags() -> dict[str, str]:
    """Tags that say which process on which host a run belongs to, so a dead one can be told apart."""
    return {HOST_TAG: socket.gethostname(), PROCESS_TAG: process_id()}


def alive(process: str) -> bool:
    """Whether the process a run's PROCESS_TAG names (on this host) still runs."""
    pid = int(process.partition(":")[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return process_id(pid) == process


def sqlite_folder(uri: str) -> Path | None:
    """The folder of a local sqlite store's database, or None for any other store."""
    return Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else None


class FileClaim:
    """An exclusive lock on `path`, held until released or until the process dies."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # blocks while another process holds it

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.release()

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


CLAIM_PREFIX = "crossprune.claim."


class StoreClaim:
    """A registered model named after `key` and the experiment: the store keeps model names unique, so exactly one
    process at a time can create it (a claim ordered by the clients' clocks let two through). The holder renews its
    lease every lease/4 seconds and deletes the model on release; a waiter deletes one whose holder died (its process
    on this host is gone, or its lease ran out) and claims in its place."""

    def __init__(self, key: str, experiment: str, lease: float = 60.0, poll: float = 1.0):
        self.client, self.lease = MlflowClient(), lease
        self.name = f"{CLAIM_PREFIX}{hashlib.sha256(experiment.encode()).hexdigest()[:12]}.{key}"
        self.tags = {CLAIM_TAG: key, "crossprune.experiment": experiment, **owner_tags()}
        while not self.take():
            free_if_dead(self.client, self.name)
            time.sleep(poll)
        self.stop = threading.Event()
        threading.Thread(target=self.renew, daemon=True).start()

    def take(self) -> bool:
        """Create the claim's model; False if another process holds it (or let it go a moment ago)."""
        try:
            self.client.create_registered_model(self.name, {**self.tags, LEASE_TAG: str(time.time() + self.lease)},
                                                "crossprune: a stage is being computed under this key")
            return True
        except MlflowException as e:
            if e.error_code in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                return False
            raise

    def renew(self) -> None:
        while not self.stop.wait(self.lease / 4):
            try:
                self.client.set_registered_model_tag(self.name, LEASE_TAG, str(time.time() + self.lease))
            except Exception:  # a server that stopped answering: the stage's own next call says so, in one line
                continue

    def release(self) -> None:
        self.stop.set()
        self.client.delete_registered_model(self.name)


def free_if_dead(client: MlflowClient, name: str) -> bool:
    """Delete the claim `name` if its holder is gone; True if it was. (Another waiter may have replaced it between
    the read and the delete: a window of one round trip, only ever after a holder died.)"""
    try:
        model = client.get_registered_model(name)
        if death(model.tags) is None:
            return False
        client.delete_registered_model(name)
        return True
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":  # released meanwhile
            return False
        raise


def free_dead_claims(client: MlflowClient) -> int:
    """Delete every claim in the store whose holder is gone; their count."""
    models = client.search_registered_models(f"name LIKE '{CLAIM_PREFIX}%'", max_results=1000)
    return sum(free_if_dead(client, m.name) for m in models)


def fail_if_dead(client: MlflowClient, run) -> bool:
    """Mark a RUNNING run FAILED, with the reason as a tag, if its process on this host died; True if it was."""
    if death(run.data.tags) is None:
        return False
    # Read it again now that its process is known dead: it may have ended the run itself after `run` was read (a
    # search a moment ago, on a loaded machine seconds ago), and a dead process ends nothing more.
    run = client.get_run(run.info.run_id)
    if run.info.status != "RUNNING" or (reason := death(run.data.tags)) is None:
        return False
    client.set_tag(run.info.run_id, FAILURE_TAG, reason)
    client.set_terminated(run.info.run_id, "FAILED")
    return True


def death(tags: dict[str, str]) -> str | None:
    """Why the owner of a run or claim (by its tags) is gone (its process on this host died, or its claim's lease ran
    out), or None."""
    host = socket.gethostname()
    if tags.get(HOST_TAG) == host and PROCESS_TAG in tags and not alive(tags[PROCESS_TAG]):
        return f"process {tags[PROCESS_TAG]} on {host} died while it ran"
    if CLAIM_TAG in tags and float(tags.get(LEASE_TAG, 0)) < time.time():
        return "claim lease expired: its holder stopped renewing it"
    return None


def experiment_id(client: MlflowClient, name: str, artifacts: str | None = None) -> str:
    """The id of experiment `name`, created (artifacts at `artifacts`) if missing, by whichever process gets there
    first."""
    for _ in range(3):
        if found := client.get_experiment_by_name(name):
            return found.experiment_id
        try:
            return client.create_experiment(name, artifacts)
        except MlflowException:  # created by another process in between
            continue
    raise RuntimeError(f"experiment {name} can be neither found nor created")


def claim(key: str, uri: str, experiment: str) -> FileClaim | StoreClaim:
    """Wait until this process holds `key` in the store at `uri`."""
    folder = sqlite_folder(uri)
    return FileClaim(folder / "locks" / f"{key}.lock") if folder else StoreClaim(key, experiment)


def mark_dead_runs(client: MlflowClient, experiment_ids: list[str]) -> int:
    """Mark FAILED every RUNNING run of a dead process on this host (claims made as runs by earlier versions, past
    their lease, too); their count."""
    running = client.search_runs(experiment_ids, "attributes.status = 'RUNNING'", max_results=10_000)
    return sum(fail_if_dead(client, run) for run in running)
