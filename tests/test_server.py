"""Against a real tracking server (`mlflow server` on 127.0.0.1): eight processes at once, the server killed and
restarted mid-sweep, and a password in tracking.uri that never reaches the terminal, the runs or their files."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from crossprune.store import connect
from crossprune.store.tracking import KEY_TAG, STAGE_TAG

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
SECRET = "hunter2-xyzzy"  # the password in every tracking.uri here
TINY = ["train_a.epochs=2", "model.hidden=[16]", "trainer.progress_bar=false", "score.batches=1", "stages=[train_a]",
        "hydra/hydra_logging=disabled", "eval.probe.max_iter=200"]

# Forks `crossprune` jobs from one process that has imported everything (a subprocess each costs seconds of imports),
# all released at once by a barrier; each child's stdout and stderr go to its own file.
JOBS = r"""
import json, multiprocessing as mp, os, sys
from crossprune import pipeline  # imported once, before any fork
from crossprune.cli import app, checks, table
jobs = json.loads(sys.argv[1])
fork = mp.get_context("fork")

def job(folder, args, out, barrier):
    os.chdir(folder)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout, sys.stderr = os.fdopen(1, "w", buffering=1), os.fdopen(2, "w", buffering=1)
    barrier.wait()
    sys.argv = ["crossprune", *args]
    try:
        app.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)

barrier = fork.Barrier(len(jobs))
procs = [fork.Process(target=job, args=(*j, barrier)) for j in jobs]
for p in procs:
    p.start()
for p in procs:
    p.join()
print(json.dumps([p.exitcode for p in procs]))
"""


class Server:
    """`mlflow server` on a free port of 127.0.0.1 over a sqlite database, its artifacts served from a folder."""

    def __init__(self, root: Path):
        self.root, self.db = root, root / "mlflow.db"
        connect.create_sqlite_store(self.db)  # migrated once per machine: the server starts on a current schema
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://crossprune:{SECRET}@127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(  # one worker, no job runner: the least a server can be
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.db}", "--artifacts-destination", str(self.root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2).close()
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"mlflow server did not answer: {(self.root / 'server.log').read_text()[-2000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def runs(self, experiment: str | None = None) -> list:
        """Every run (of `experiment` and its claims, when given)."""
        client = MlflowClient(self.uri)
        ids = [e.experiment_id for e in client.search_experiments() if experiment is None or e.name.split(".")[0] == experiment]
        return client.search_runs(ids, max_results=10_000)

    def running(self, stage: str, since_ms: int) -> int:
        """How many `stage` runs started after `since_ms` are RUNNING (read from the database: polled often)."""
        query = ("SELECT count(*) FROM runs JOIN tags ON runs.run_uuid = tags.run_uuid WHERE tags.key = 'crossprune.stage'"
                 " AND tags.value = ? AND runs.status = 'RUNNING' AND runs.start_time > ?")
        try:
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.1)) as con:
                return con.execute(query, (stage, since_ms)).fetchone()[0]
        except sqlite3.Error:
            return 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    served = Server(tmp_path_factory.mktemp("server"))
    served.start()
    yield served
    if served.process.poll() is None:
        served.kill()


def forked(jobs: list[tuple[Path, list[str]]]) -> subprocess.Popen:
    """The JOBS script on `jobs` (folder, arguments); each job's output in <folder>/out.<i>.txt."""
    spec = [(str(folder), args, str(folder / f"out.{i}.txt")) for i, (folder, args) in enumerate(jobs)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.Popen([sys.executable, "-c", JOBS, json.dumps(spec)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def codes(process: subprocess.Popen, timeout: float) -> list[int]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def outputs(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob("out.*.txt"))]


def assert_no_secret(server: Server, texts: list[str]) -> None:
    """Not in what the processes printed, the runs' params and tags, the database, nor any artifact (config.yaml)."""
    assert not [t for t in texts if SECRET in t]
    for r in server.runs():
        assert SECRET not in json.dumps([r.data.params, r.data.tags]), r.info.run_id
    assert SECRET.encode() not in server.db.read_bytes()
    assert not [p for p in (server.root / "artifacts").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_eight_processes_on_a_server_all_finish_and_its_password_is_never_shown(server, tmp_path):
    """Eight jobs at the same instant (four sparsities twice, all sharing train_a): every one exits 0, train_a is
    trained once (the others wait on its claim in the store), no key has two runs, none is left RUNNING; the
    password in tracking.uri appears nowhere."""
    jobs = [(tmp_path, [*TINY, f"tracking.uri={server.uri}", "tracking.experiment=eight", f"prune.sparsity={s}"])
            for s in (0.5, 0.6, 0.7, 0.8) * 2]
    assert codes(forked(jobs), timeout=900) == [0] * 8, outputs(tmp_path)
    runs = [r for r in server.runs("eight") if STAGE_TAG in r.data.tags]
    unfinished = [f"{r.data.tags[STAGE_TAG]} run {r.info.run_id} is {r.info.status}" for r in runs if r.info.status != "FINISHED"]
    assert not unfinished, unfinished
    assert Counter(r.data.tags[STAGE_TAG] for r in runs) == {"pipeline": 8, "train_a": 1}
    assert "***" in next(r for r in runs if "tracking.uri" in r.data.params).data.params["tracking.uri"]
    assert_no_secret(server, outputs(tmp_path))


def test_the_server_killed_mid_sweep_then_back_the_same_sweeps_complete(server, tmp_path):
    """Two sweeps training when the server is killed with SIGKILL: each exits 2 within a minute with one line that
    names the store (password hidden) and the cause, no traceback. With the server back, the same two commands
    complete: the dead runs marked FAILED, none RUNNING, no stage key FINISHED twice."""
    base = [*TINY, "train_a.epochs=40", f"tracking.uri={server.uri}", "tracking.experiment=killed"]
    jobs = [(tmp_path / name, ["-m", *base, seeds]) for name, seeds in (("first", "seed=0,1"), ("second", "seed=2,3"))]
    for folder, _ in jobs:
        folder.mkdir()
    since = int(time.time() * 1000)
    sweeps = forked(jobs)
    deadline = time.time() + 600
    while server.running("train_a", since) < 2 and sweeps.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert sweeps.poll() is None, [outputs(f) for f, _ in jobs]  # both still training
    server.kill()
    killed = time.time()
    assert codes(sweeps, timeout=300) == [2, 2], [outputs(f) for f, _ in jobs]
    assert time.time() - killed < 60
    for folder, _ in jobs:
        said = [line for line in outputs(folder)[0].splitlines() if line.startswith("crossprune: ")]
        assert said[-1].startswith(f"crossprune: the MLflow store at http://crossprune:***@127.0.0.1:{server.port} stopped answering (")
        assert "Traceback" not in outputs(folder)[0] and SECRET not in outputs(folder)[0]

    server.start()
    assert codes(forked(jobs), timeout=900) == [0, 0], [outputs(f) for f, _ in jobs]
    runs = server.runs("killed")
    assert not [f"{r.data.tags.get(STAGE_TAG, 'claim')} run {r.info.run_id}" for r in runs if r.info.status == "RUNNING"]
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}  # the killed clients' runs marked by the rerun
    finished = Counter(r.data.tags[KEY_TAG] for r in runs if r.info.status == "FINISHED" and KEY_TAG in r.data.tags)
    assert max(finished.values()) == 1
    parents = [r for r in runs if r.data.tags.get(STAGE_TAG) == "pipeline" and r.info.status == "FINISHED"]
    assert len({r.data.params["seed"] for r in parents}) == 4
    assert_no_secret(server, [o for f, _ in jobs for o in outputs(f)])
