"""Same numbers whatever the cores: compute.threads pins torch and BLAS, so the machine's thread count never
reaches a result's last bits (it moved verdicts across their boundaries before)."""

import os
import subprocess
import sys

from conftest import SHRINK, SMALL
from mlflow.tracking import MlflowClient

from crossprune.store.tracking import STAGE_TAG

CLI = "import sys; from crossprune.cli.app import main; sys.argv = ['crossprune', *sys.argv[1:]]; main()"


def runs_of(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_one_job_under_one_and_two_threads_gives_identical_metrics(tmp_path):
    """The default job (every stage, an MLP on digits) under OMP_NUM_THREADS=1 and =2, each on its own fresh store:
    every metric of every stage run is equal, bit for bit, and each run records the threads it was pinned to."""
    found = {}
    for threads in ("1", "2"):
        uri = f"sqlite:///{tmp_path}/t{threads}/mlflow.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", CLI, *SHRINK, SMALL["mlp"], f"tracking.uri={uri}"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        runs = [r for r in runs_of(uri) if r.data.tags.get(STAGE_TAG)]
        found[threads] = {r.data.tags[STAGE_TAG]: r.data.metrics for r in runs if r.data.tags[STAGE_TAG] != "pipeline"}
        assert {r.data.tags.get("crossprune.torch_threads") for r in runs} == {"1"}
        assert all(r.data.tags.get("crossprune.cpu") for r in runs)
    assert set(found["1"]) == {"train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"}
    for stage, metrics in found["1"].items():
        other = found["2"][stage]
        assert metrics.keys() == other.keys(), stage
        differ = {k: (v, other[k]) for k, v in metrics.items() if v != other[k] and not k.startswith(("latency", "time"))}
        assert not differ, f"{stage}: {differ}"
