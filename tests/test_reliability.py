"""Shared stores under concurrency, killed runs, damaged artifacts, diverged losses: nothing lost, duplicated,
silently wrong or left RUNNING."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from crossprune.store import connect, locks
from crossprune.store.tracking import KEY_TAG, STAGE_TAG, StageFailed

CLI = str(Path(sys.executable).with_name("crossprune"))
TINY = ["train_a.epochs=2", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false", "score.batches=1"]

# Forks `crossprune` jobs from one process that has already imported everything, so that four of them really start
# at the same instant (a barrier) instead of after staggered seconds of imports; each child is the real CLI.
RACE = r"""
import json, multiprocessing as mp, os, sys
from crossprune import pipeline  # imported once, before any fork
from crossprune.cli import app, checks, table
trials = json.loads(sys.argv[1])
fork = mp.get_context("fork")

def job(folder, args, barrier):
    os.chdir(folder)
    sys.stdout = open(os.devnull, "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    barrier.wait()
    sys.argv = ["crossprune", *args]
    try:
        app.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    os._exit(code)

codes = []
for folder, jobs, later in trials:
    for batch in (jobs, [later]):
        barrier = fork.Barrier(len(batch))
        procs = [fork.Process(target=job, args=(folder, args, barrier)) for args in batch]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        codes.append([p.exitcode for p in procs])
print(json.dumps(codes))
"""


def runs_of(uri: str) -> list:
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=10_000) if ids else []


def wait_for(process: subprocess.Popen, cwd: Path, stage: str, status: str, timeout: float = 240) -> None:
    """Poll the store in `cwd/mlruns` until a `stage` run is in `status` (or the process ends, or time runs out)."""
    db, deadline = cwd / "mlruns" / "mlflow.db", time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        runs = runs_of(f"sqlite:///{db}") if db.exists() else []
        if any(r.data.tags.get(STAGE_TAG) == stage and r.info.status == status for r in runs):
            return
        time.sleep(0.2)


def test_four_processes_starting_together_on_a_fresh_store(tmp_path):
    """Five trials of four processes at the same instant on a new store (two identical, two with other sparsities,
    which share train_a): every one exits 0, a later run exits 0, train_a is trained once, no key has two runs."""
    base = [*TINY, "stages=[train_a]", "hydra/hydra_logging=disabled", "eval.probe.max_iter=200"]
    trials = []
    for trial in range(5):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        store = [f"tracking.uri=sqlite:///{folder}/store/mlflow.db"]
        jobs = [[*base, *store, f"prune.sparsity={s}"] for s in (0.5, 0.5, 0.7, 0.9)]
        trials.append((str(folder), jobs, [*base, *store, "prune.sparsity=0.6"]))
    out = subprocess.run([sys.executable, "-c", RACE, json.dumps(trials)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    codes = json.loads(out.stdout.strip().splitlines()[-1])
    assert codes == [[0, 0, 0, 0], [0]] * 5, out.stderr[-3000:]
    for folder, _, _ in trials:
        runs = [r for r in runs_of(f"sqlite:///{folder}/store/mlflow.db") if STAGE_TAG in r.data.tags]
        assert all(r.info.status == "FINISHED" for r in runs)
        stages = Counter(r.data.tags[STAGE_TAG] for r in runs)
        assert stages == {"pipeline": 5, "train_a": 1}
        keys = Counter(r.data.tags[KEY_TAG] for r in runs if KEY_TAG in r.data.tags)
        assert max(keys.values()) == 1


def test_kill_9_mid_sweep_then_the_same_command_completes(tmp_path):
    """A sweep killed with SIGKILL after its first stages finished; the same command then completes, marks the dead
    process's runs FAILED, leaves none RUNNING, and no stage key has two FINISHED runs."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    command = [CLI, "-m", "prune.sparsity=0.5,0.6,0.7,0.8", *TINY]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    wait_for(sweep, tmp_path, "finetune_b", "FINISHED")
    assert sweep.poll() is None, "the sweep ended before it could be killed"
    os.killpg(sweep.pid, signal.SIGKILL)
    sweep.wait()
    left = [r for r in runs_of(uri) if r.info.status == "RUNNING"]
    assert left  # the parent at least: killed processes cannot end their runs

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "died FAILED" in again.stderr
    runs = runs_of(uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    dead = {r.info.run_id: r for r in runs if r.info.status == "FAILED"}
    assert {r.info.run_id for r in left} <= dead.keys()
    assert all("died while it ran" in r.data.tags[locks.FAILURE_TAG] for r in dead.values())
    finished = Counter(r.data.tags[KEY_TAG] for r in runs if r.info.status == "FINISHED" and KEY_TAG in r.data.tags)
    assert max(finished.values()) == 1
    parents = [r for r in runs if r.data.tags.get(STAGE_TAG) == "pipeline" and r.info.status == "FINISHED"]
    assert len(parents) >= 4


def stage_metrics(results) -> dict:
    return {stage: {k: v for k, v in r.metrics.items()} for stage, r in results.items()}


def artifact(store: Path, run_id: str, name: str) -> Path:
    return next(store.rglob(f"{run_id}/artifacts/{name}"))


def test_damaged_or_deleted_artifacts_are_detected_and_recomputed(tmp_path, make_cfg, compose_at, run_pipeline):
    """Zeroed bytes in train_a's cached model, then its deleted model: each time the next run (a new sparsity) marks
    the bad run FAILED, retrains train_a, and gives the metrics of a clean store."""
    first = run_pipeline(make_cfg())
    clean = {s: run_pipeline(compose_at(tmp_path / "clean", f"prune.sparsity={s}")) for s in (0.5, 0.6)}
    model = artifact(tmp_path / "artifacts", first["train_a"].run_id, "model.safetensors")
    data = bytearray(model.read_bytes())
    data[100:100 + 4096] = bytes(4096)
    model.write_bytes(data)

    second = run_pipeline(make_cfg("prune.sparsity=0.5"))
    assert not second["train_a"].cached and second["train_a"].run_id != first["train_a"].run_id
    assert stage_metrics(second) == stage_metrics(clean[0.5])
    bad = MlflowClient().get_run(first["train_a"].run_id)
    assert bad.info.status == "FAILED" and "model.safetensors does not match its sha256" in bad.data.tags[locks.FAILURE_TAG]

    artifact(tmp_path / "artifacts", second["train_a"].run_id, "model.safetensors").unlink()
    third = run_pipeline(make_cfg("prune.sparsity=0.6"))
    assert not third["train_a"].cached
    assert stage_metrics(third) == stage_metrics(clean[0.6])
    assert "model.safetensors is missing" in MlflowClient().get_run(second["train_a"].run_id).data.tags[locks.FAILURE_TAG]
    assert run_pipeline(make_cfg("prune.sparsity=0.6"))["finetune_b"].cached  # and the cache serves again


def test_a_diverging_loss_stops_in_the_first_epoch(make_cfg, run_pipeline, capsys):
    """lr=1e30: the stage stops at the first non-finite loss with one line naming it, its epoch and the likely cause;
    its run and the parent are FAILED, and no epoch was logged."""
    with pytest.raises(StageFailed) as failed:
        run_pipeline(make_cfg("train.optimizer.lr=1e30", "train_a.epochs=15"))
    line = str(failed.value)
    assert "\n" not in line
    assert line.startswith("train_a: the loss became") and "at epoch 1 of 15" in line and "train.optimizer.lr=1e+30 is likely too high" in line
    runs = {r.data.tags[STAGE_TAG]: r for r in MlflowClient().search_runs([MlflowClient().get_experiment_by_name("crossprune").experiment_id])}
    assert runs["train_a"].info.status == "FAILED" and runs["pipeline"].info.status == "FAILED"
    assert MlflowClient().get_metric_history(runs["train_a"].info.run_id, "train/loss") == []


def test_a_claim_in_the_store_waits_for_its_holder_and_outlives_a_dead_one(tmp_path):
    """The claim protocol for tracking servers (run here on sqlite): a second claim on a key waits until the first
    is released; a claim whose lease ran out is marked FAILED and taken over."""
    connect.connect(OmegaConf.create({"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "e", "artifacts": None}))
    first = locks.StoreClaim("k", "e", poll=0.05)
    got = []
    waiter = threading.Thread(target=lambda: got.append(locks.StoreClaim("k", "e", poll=0.05)))
    waiter.start()
    time.sleep(0.5)
    assert not got  # still waiting
    first.release()
    waiter.join(10)
    assert got
    got[0].stop.set()  # its holder "dies": no more renewals, and a lease already past
    MlflowClient().set_tag(got[0].run_id, locks.LEASE_TAG, str(time.time() - 1))
    third = locks.StoreClaim("k", "e", poll=0.05)
    dead = MlflowClient().get_run(got[0].run_id)
    assert dead.info.status == "FAILED" and "lease expired" in dead.data.tags[locks.FAILURE_TAG]
    third.release()


def test_ctrl_c_marks_the_open_runs_killed_in_one_line(tmp_path):
    """SIGINT while train_a trains: exit 130, one line saying so, the parent and the stage run KILLED."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    run = subprocess.Popen([CLI, *TINY, "train_a.epochs=500"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for(run, tmp_path, "train_a", "RUNNING")
    time.sleep(1)  # inside fit
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.strip()] == ["crossprune: interrupted: 2 open run(s) marked KILLED"]
    assert sorted(r.info.status for r in runs_of(uri)) == ["KILLED", "KILLED"]
