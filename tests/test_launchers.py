"""Scale-out on Hydra's own engines: the joblib and submitit launchers, the optuna sweeper, a Slurm example."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from crossprune.store.tracking import STAGE_TAG

CLI = str(Path(sys.executable).with_name("crossprune"))
CONF = str(Path(__file__).resolve().parents[1] / "conf")
TINY = ["train_a.epochs=2", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false", "score.batches=1"]
# The README's Slurm example, checked here against the launcher's own schema.
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
         "hydra.launcher.cpus_per_task=8", "hydra.launcher.timeout_min=120", "hydra.launcher.array_parallelism=16",
         "trainer.accelerator=gpu", "tracking.uri=http://mlflow.example.org:5000"]


def crossprune(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def parents(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("crossprune").experiment_id])
    return [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]


def test_joblib_runs_every_point_in_parallel_on_a_fresh_store(tmp_path):
    """Four points in two worker processes on a new store: every point FINISHED, train_a trained once, each worker's
    torch on compute.threads (1), each job's k/N line printed as it starts."""
    out = crossprune(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "prune.sparsity=0.5,0.7,0.8,0.9",
                     "stages=[train_a,score,prune]", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = parents(tmp_path)
    assert sorted(r.data.params["prune.sparsity"] for r in runs) == ["0.5", "0.7", "0.8", "0.9"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["crossprune.process"] for r in runs}) == 2  # two workers did the work
    assert len({r.data.tags["crossprune.run.train_a"] for r in runs}) == 1
    assert {r.data.tags["crossprune.torch_threads"] for r in runs} == {"1"}  # compute.threads, whatever the cores
    started = sorted(line.split()[1] for line in out.stderr.splitlines() if line.startswith("point "))
    assert started == ["1/4", "2/4", "3/4", "4/4"]  # each worker's job prints its k/N line as it starts
    assert not [line for line in out.stderr.splitlines() if " : prune.sparsity=" in line]  # not Hydra's 4 lines at once


def test_submitit_local_runs_a_job(tmp_path):
    out = crossprune(tmp_path, "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "stages=[train_a]", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = parents(tmp_path)
    assert run.info.status == "FINISHED" and run.data.metrics["train_a/A/acc"] > 0.2


def test_optuna_runs_its_trials_on_the_objective_and_reports_the_best(tmp_path):
    """An interval over sparsity, three trials: each returns finetune_b's B/acc (the default objective)."""
    out = crossprune(tmp_path, "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.direction=maximize",
                     "prune.sparsity=interval(0.5,0.95)", "stages=[train_a,score,prune,finetune_b]", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = parents(tmp_path)
    assert len(runs) == 3 and all(0.5 <= float(r.data.params["prune.sparsity"]) <= 0.95 for r in runs)
    [results] = Path(tmp_path, "mlruns/multirun").glob("*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    assert best["best_value"] == max(r.data.metrics["finetune_b/B/acc"] for r in runs)


def test_the_slurm_example_composes():
    """The README's submitit_slurm example is valid for the installed launcher (nothing is submitted)."""
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=SLURM, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min, launcher.array_parallelism) == ("gpu", 1, 120, 16)
