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


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four points that share stages: the output and the store's runs."""
    cwd = tmp_path_factory.mktemp("sweep")
    out = crossprune(cwd, "-m", "prune.sparsity=0.5,0.9", "criterion=magnitude,taylor", *SHRINK)
    return out, store_runs(cwd), f"sqlite:///{cwd}/mlruns/mlflow.db"


def test_a_sweep_trains_a_once_and_names_its_points(sweep):
    """A sweep of four points: A trained once, magnitude (data-free) scored once for A and B alike, taylor on A and
    on B (the mask agreement); four parents with distinct names, each describing the six stage runs it used."""
    out, runs, _ = sweep
    assert out.returncode == 0, out.stderr
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


def test_each_stage_run_logs_only_the_config_it_depends_on(sweep):
    """train_a knows nothing of criteria or sparsity; score nothing of sparsity; the taylor prune runs their own
    criterion and sparsity, and the scoring they prune by (score.data=A), not the one on B they compare it with."""
    runs = sweep[1]
    params = {r.info.run_id: r.data.params for r in runs}
    of = lambda stage: [r.data.params for r in runs if r.data.tags[STAGE_TAG] == stage]  # noqa: E731
    (train_a,) = of("train_a")
    assert not {k for k in train_a if k.startswith(("criterion.", "prune.", "score.", "finetune_b.", "control."))}
    assert {"seed", "model", "model.hidden", "pair.a.name", "train_a.epochs", "train.optimizer.lr"} <= train_a.keys()
    assert all(not any(k.startswith("prune.sparsity") for k in p) for p in of("score"))
    assert {p.get("score.data") for p in of("score")} == {None, "A", "B"}  # magnitude is data-free
    pruned = {(p["criterion.name"], p["prune.sparsity"], p.get("score.data")) for p in of("prune")}
    assert pruned == {("magnitude", "0.5", None), ("magnitude", "0.9", None), ("taylor", "0.5", "A"), ("taylor", "0.9", "A")}
    assert all("finetune_b.epochs" in p and "finetune_b.head" in p for p in of("finetune_b"))
    assert all(not any(k.startswith(("criterion.", "prune.")) for k in p) for p in of("scratch_b_dense"))
    assert len(params) == len(runs)


def test_each_parent_reaches_its_six_stage_runs_by_one_search(sweep):
    """Cached or not, every stage run a parent used carries crossprune.parent.<its id>: the search in its
    description lists exactly the six runs its crossprune.run.<stage> tags name."""
    _, runs, uri = sweep
    for parent in [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]:
        search = re.search(r"search `` (.+) ``", parent.data.tags["mlflow.note.content"]).group(1)
        found = mlflow.MlflowClient(uri).search_runs([parent.info.experiment_id], search)
        assert {r.info.run_id for r in found} == {v for k, v in parent.data.tags.items() if k.startswith("crossprune.run.")}
        assert len(found) == 6


def test_finetune_b_is_a_logged_model_with_a_signature(sweep):
    """Each finetune_b run's network is an MLflow logged model of that run, whose signature says B's input and
    output shapes and whose input example loads and runs."""
    import torch

    _, runs, uri = sweep
    mlflow.set_tracking_uri(uri)
    tuned = {r.info.run_id for r in runs if r.data.tags[STAGE_TAG] == "finetune_b"}
    models = mlflow.search_logged_models(experiment_ids=[runs[0].info.experiment_id], output_format="list")
    assert {m.source_run_id for m in models} == tuned and all(m.name == "finetune_b" for m in models)
    info = mlflow.models.get_model_info(f"models:/{models[0].model_id}")
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 1, 8, 8)  # digits, one channel
    assert tuple(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 5)  # B's five classes
    net = mlflow.pytorch.load_model(f"models:/{models[0].model_id}")
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 5)
