"""The `crossprune` command as a user runs it: help, a run and a sweep (bad input: tests/test_bad_input.py)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from crossprune.store.tracking import STAGE_TAG

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


@pytest.mark.parametrize("overrides", [[], ["model=cnn", "prune.sparsity=0.7"], ["--resolve"]], ids=["default", "overrides", "resolve"])
def test_help_is_hydras_own_help_word_for_word(overrides, capsys, monkeypatch):
    """`crossprune --help` answers from one composition (crossprune.cli.help); Hydra's app answers the slow way (it
    deep-copies the config store per group). Both print the same text, and the fast path imports no torch."""
    from crossprune.cli import app

    monkeypatch.setattr(sys, "argv", ["crossprune", *overrides, "--help"])
    with pytest.raises(SystemExit, match="0"):
        app.app()  # Hydra's own help
    hydras = capsys.readouterr().out
    app.main()
    ours = capsys.readouterr().out
    assert ours == hydras and "== Configuration groups ==" in ours and "model: cnn, cnn1d," in ours and "mlp" in ours
    assert ("sparsity: 0.7" in ours) == ("prune.sparsity=0.7" in overrides)
    if overrides:
        return
    probe = "import sys; from crossprune.cli.app import main; sys.argv = ['crossprune', '--help']; main(); " \
            "print(sorted({'torch', 'mlflow', 'sklearn', 'lightning'} & sys.modules.keys()))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines()[-1] == "[]"


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


def test_a_sweep_trains_a_once_and_names_its_points(tmp_path):
    """A sweep of four points: A trained once, magnitude (data-free) scored once for A and B alike, taylor on A and
    on B (the mask agreement); four parents with distinct names, each describing the six stage runs it used."""
    out = crossprune(tmp_path, "-m", "prune.sparsity=0.5,0.9", "criterion=magnitude,taylor", *SHRINK)
    assert out.returncode == 0, out.stderr
    runs = store_runs(tmp_path)
    stages = [r.data.tags[STAGE_TAG] for r in runs]
    assert stages.count("pipeline") == 4 and stages.count("train_a") == 1 and stages.count("score") == 3
    assert stages.count("prune") == 4 and stages.count("finetune_b") == 4 and stages.count("scratch_b_dense") == 1
    parents = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    assert sorted(r.info.run_name for r in parents) == [
        f"digits_split · {c} · s={s} · seed 0" for c in ("magnitude@A", "taylor@A") for s in (0.5, 0.9)]
    ids = {r.info.run_id for r in runs}
    for parent in parents:
        linked = re.findall(r"\]\(#/experiments/\d+/runs/(\w+)\)", parent.data.tags["mlflow.note.content"])
        assert len(linked) == 6 and set(linked) <= ids
        assert set(linked) == {v for k, v in parent.data.tags.items() if k.startswith("crossprune.run.")}
    assert {r.info.run_name for r in runs if r.data.tags[STAGE_TAG] == "score"} == {
        "score · magnitude · seed 0", "score · taylor@A · seed 0", "score · taylor@B · seed 0"}
