"""One stage key, one computation: a process claims a key before computing it, and any other process that wants the
key waits, then reuses the FINISHED run. A local sqlite store uses a file lock, which the OS releases when its
holder dies; any other store records the claim as a run whose lease its holder keeps renewing."""

import fcntl
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


CLAIM_EXPERIMENTS: dict[tuple[str, str], str] = {}  # (server, claims experiment) -> its id


class StoreClaim:
    """A RUNNING claim run on `key` in its own experiment; the oldest live claim holds the key. The holder renews
    its lease every lease/4 seconds; a claim whose lease ran out (its holder died) is marked FAILED and skipped."""

    def __init__(self, key: str, experiment: str, lease: float = 60.0, poll: float = 1.0):
        self.client, self.key, self.lease = MlflowClient(), key, lease
        where = (self.client.tracking_uri, f"{experiment}.claims")
        if where not in CLAIM_EXPERIMENTS:  # asked once per process and server, not at every stage
            CLAIM_EXPERIMENTS[where] = experiment_id(self.client, where[1])
        self.experiment_id = CLAIM_EXPERIMENTS[where]
        tags = {CLAIM_TAG: key, LEASE_TAG: str(time.time() + lease), **owner_tags()}
        self.run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=f"claim {key}").info.run_id
        self.stop = threading.Event()
        threading.Thread(target=self.renew, daemon=True).start()
        while not self.holds():
            time.sleep(poll)

    def renew(self) -> None:
        while not self.stop.wait(self.lease / 4):
            try:
                self.client.set_tag(self.run_id, LEASE_TAG, str(time.time() + self.lease))
            except Exception:  # a server that stopped answering: the stage's own next call says so, in one line
                continue

    def holds(self) -> bool:
        runs = self.client.search_runs([self.experiment_id], f"tags.`{CLAIM_TAG}` = '{self.key}' and attributes.status = 'RUNNING'")
        live = [r for r in runs if r.info.run_id == self.run_id or not fail_if_dead(self.client, r)]
        return min(live, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id == self.run_id

    def release(self) -> None:
        self.stop.set()
        self.client.set_terminated(self.run_id, "FINISHED")
        self.client.delete_run(self.run_id)  # a released claim is of no further interest


def fail_if_dead(client: MlflowClient, run) -> bool:
    """Mark a RUNNING run FAILED, with the reason as a tag, if its process on this host died or its claim's lease ran
    out; True if it was."""
    if death(run) is None:
        return False
    # Read it again now that its process is known dead: it may have ended the run itself after `run` was read (a
    # search a moment ago, on a loaded machine seconds ago), and a dead process ends nothing more.
    run = client.get_run(run.info.run_id)
    if run.info.status != "RUNNING" or (reason := death(run)) is None:
        return False
    client.set_tag(run.info.run_id, FAILURE_TAG, reason)
    client.set_terminated(run.info.run_id, "FAILED")
    return True


def death(run) -> str | None:
    """Why a run's owner is gone (its process on this host died, or its claim's lease ran out), or None."""
    tags, host = run.data.tags, socket.gethostname()
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
    """Mark FAILED every RUNNING run of a dead process on this host, and every claim past its lease; their count."""
    running = client.search_runs(experiment_ids, "attributes.status = 'RUNNING'", max_results=10_000)
    return sum(fail_if_dead(client, run) for run in running)
