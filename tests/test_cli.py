"""The `crossprune` command as a user runs it: help, a run and a sweep (bad input: tests/test_bad_input.py)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from crossprune.tracking import STAGE_TAG

VENV_CLI = Path(sys.executable).with_name("crossprune")
CLI = str(VENV_CLI) if VENV_CLI.exists() else shutil.which("crossprune")
SHRINK = ["train_a.epochs=1", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false"]
STAGES = ("train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse")


def crossprune(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # A clean environment: no inherited store, and rich's default width for a pipe (80 columns).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k not in ("COLUMNS", "LINES")}
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def store_runs(cwd: Path) -> list:
    mlflow.set_tracking_uri(f"sqlite:///{cwd}/mlruns/mlflow.db")
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_help_lists_the_config_groups(tmp_path):
    """--help exits 0 and lists every config group with its options."""
    out = crossprune(tmp_path, "--help")
    assert out.returncode == 0
    groups = dict(re.findall(r"^(\w+): (.+)$", out.stdout.split("== Config ==")[0], flags=re.M))
    assert {"pair", "model", "criterion", "prune", "control"} <= groups.keys()
    assert "digits_split" in groups["pair"] and "magnitude" in groups["criterion"] and "mlp" in groups["model"]
    assert "shuffle_within_layer" in groups["control"] and "unstructured" in groups["prune"]
    assert not (tmp_path / "mlruns").exists()


def test_a_run_prints_the_table_and_the_ui_line(tmp_path):
    """A tiny run exits 0, prints a row per stage and how to open the UI, and leaves 7 runs in ./mlruns."""
    out = crossprune(tmp_path, *SHRINK)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if re.match(r"^\W*(train_a|score|prune|finetune_b|scratch_b_\w+) ", line)]
    assert [row.split()[1] for row in rows] == list(STAGES)
    assert "mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db" in out.stdout
    runs = store_runs(tmp_path)
    assert sorted(r.data.tags[STAGE_TAG] for r in runs) == sorted([*STAGES, "pipeline"])
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_sweep_trains_a_once(tmp_path):
    """Issue 2's sweep: six pipeline runs, A trained once, magnitude (data-free) scored once for A and B alike."""
    out = crossprune(tmp_path, "-m", "prune.sparsity=0.5,0.8,0.9", "score.data=A,B", *SHRINK)
    assert out.returncode == 0, out.stderr
    stages = [r.data.tags[STAGE_TAG] for r in store_runs(tmp_path)]
    assert stages.count("pipeline") == 6 and stages.count("train_a") == 1 and stages.count("score") == 1
    assert stages.count("prune") == 3 and stages.count("finetune_b") == 3 and stages.count("scratch_b_dense") == 1
