"""DVC on a fresh clone: `dvc exp run -S prune.sparsity=0.5` reproduces the study and report stages with that change,
`dvc params diff` and `dvc metrics show` read them, and then nothing is left to redo. The clone is a git
repo of this working tree's tracked and new files (what the next commit holds), its params.yaml narrowed to a tiny
study so the test takes under a minute."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

Repo = pytest.importorskip("dvc.repo", reason="dvc is not installed (pip install -e '.[test]')").Repo

ROOT = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")
# sanity narrowed to two points (magnitude vs random pruning: one seed, one pair, no shuffle control) after one
# epoch, no per-stage figures: the stages and their wiring are the full study's
TINY = {"study": "sanity", "seed": 0, "pair": "digits_split", "control": "none", "prune": {"sparsity": 0.9},
        "train_a": {"epochs": 1}, "tracking": {"figures": False}}
GIT_USER = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


@pytest.fixture
def clone(tmp_path):
    """A git repo of the working tree (no .venv, no mlruns content, no outputs), with the tiny params committed."""
    repo = tmp_path / "clone"
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():  # e.g. src/crossprune/conf -> ../../conf
            target.symlink_to(os.readlink(source))
        elif source.is_file():  # a tracked file deleted in the working tree is listed too
            shutil.copy2(source, target)
    (repo / ".venv").symlink_to(sys.prefix)  # what `make` leaves in a clone
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(params, TINY), sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "test")  # DVC commits experiments with its own git library
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "clone")
    return repo


def merge(base: dict, new: dict) -> dict:
    return {**base, **{k: merge(base.get(k) or {}, v) if isinstance(v, dict) else v for k, v in new.items()}}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, env={**os.environ, **GIT_USER})


def dvc(repo: Path, *args: str, store: bool = True) -> str:
    """A dvc command in the clone, as a newcomer types it: no venv on PATH, the clone's own sources and (`store`)
    its store named by MLFLOW_TRACKING_URI; without it, conf/'s relative default."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, **GIT_USER, "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": str(repo / "src"),
           **({"MLFLOW_TRACKING_URI": f"sqlite:///{repo}/mlruns/mlflow.db"} if store else {}),
           "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != DVC.parent)}
    done = subprocess.run([str(DVC), *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_exp_run_reproduces_study_and_report_with_dvc_params_and_metrics(clone):
    # One run of both stages (a second would double the minute): the committed params say 0.9, -S says 0.5.
    dvc(clone, "exp", "run", "-S", "prune.sparsity=0.5")
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"study", "report"}
    assert lock["stages"]["study"]["params"]["params.yaml"]["prune"]["sparsity"] == 0.5

    changed = json.loads(dvc(clone, "params", "diff", "--json"))["params.yaml"]["prune.sparsity"]  # vs the commit
    assert (changed["old"], changed["new"]) == (0.9, 0.5)
    record = json.loads((clone / "pipelines/out/study.json").read_text())
    client = MlflowClient(recorded_store(clone, record))
    ran = [client.get_run(r["run"]).data.params for r in record["runs"]]
    assert {p["criterion.name"] for p in ran} == {"magnitude", "random"}
    assert {p["prune.sparsity"] for p in ran} == {"0.5"}

    shown = json.loads(dvc(clone, "metrics", "show", "--json"))
    metrics = next(iter(shown.values()))["data"]["pipelines/out/metrics.json"]["data"]
    assert metrics["sanity_random"]["digits_split"]["n"] == 1  # one seed: a verdict, no interval
    assert sorted((clone / "pipelines/out/plots").glob("*.png"))  # the report's figures, DVC's plots
    with Repo(str(clone)) as repo:  # in-process: a second dvc start-up would cost 2 s of the minute
        assert repo.status() == {}  # the lock matches the clone: `dvc repro` has nothing to redo


def recorded_store(workspace: Path, record: dict) -> str:
    """The store a study record names: a relative sqlite store is the workspace's (the record is committed)."""
    uri = record["tracking"]["uri"]
    relative = uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
    return f"sqlite:///{workspace / uri.removeprefix('sqlite:///')}" if relative else uri


def test_exp_run_in_a_temporary_copy_keeps_its_runs_in_the_workspace_store(clone):
    """`dvc exp run --temp` runs the stages in a copy under .dvc/tmp that it then deletes; conf/'s relative store
    must still be the workspace's, so the runs, the report run and the record that names them all survive."""
    dvc(clone, "exp", "run", "--temp", "-n", "tiny-temp", "-S", "prune.sparsity=0.5", store=False)
    assert not list((clone / ".dvc" / "tmp" / "exps").glob("tmp*"))  # the copy is gone
    dvc(clone, "exp", "apply", "tiny-temp", store=False)  # its outputs, as git keeps them, into the workspace
    record = json.loads((clone / "pipelines/out/study.json").read_text())
    assert record["tracking"]["uri"] == "sqlite:///mlruns/mlflow.db"  # as committed: relative to the workspace
    client = MlflowClient(f"sqlite:///{clone}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("crossprune").experiment_id
    parents = [client.get_run(r["run"]) for r in record["runs"]]
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    assert {p.data.params["prune.sparsity"] for p in parents} == {"0.5"}
    assert all(p.data.tags["crossprune.sweep"].startswith(str(clone.resolve() / "mlruns" / "multirun")) for p in parents)
    reports = client.search_runs([experiment], "tags.`crossprune.stage` = 'report'")
    assert len(reports) == 1 and reports[0].data.tags["crossprune.study"] == record["name"]
