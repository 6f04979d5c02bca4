"""A sweep runs every point: a point whose pruning empties a layer (what its weights did, not bad input) is FAILED
with its reason in crossprune.failure, every other point FINISHES, the table lists the failed ones and the command
ends 0 with one line `N of M points failed: …`. Bad input still stops everything up front (tests/test_bad_input.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from crossprune.store.locks import FAILURE_TAG
from crossprune.store.tracking import STAGE_TAG

CLI = str(Path(sys.executable).with_name("crossprune"))
COLLAPSE = r"^prune: pruning removes every weight of layers\.\d\.weight \(prune\.allow_layer_collapse=true allows it\)$"


def crossprune(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k not in ("COLUMNS", "LINES")}
    return subprocess.run([CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The issue's command: sanity's six points on digits after one epoch of A; magnitude at 0.95 empties a layer."""
    cwd = tmp_path_factory.mktemp("sanity")
    done = crossprune(cwd, "-m", "study=sanity", "seed=0", "pair=digits_split", "train_a.epochs=1",
                      "trainer.progress_bar=false", "tracking.figures=false")
    client = MlflowClient(f"sqlite:///{cwd}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("crossprune").experiment_id], max_results=1000)
    return done, runs, cwd


def test_the_sweep_exits_0_with_every_other_point_finished(sweep):
    done, runs, _ = sweep
    assert done.returncode == 0, done.stderr
    parents = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    failed = [r for r in parents if r.info.status == "FAILED"]
    assert len(parents) == 6 and 1 <= len(failed) < 6
    assert all(r.info.status == "FINISHED" for r in parents if r not in failed)
    for parent in failed:  # the parent and its prune run say why; nothing else about the point failed
        assert re.match(COLLAPSE, parent.data.tags[FAILURE_TAG]), parent.data.tags[FAILURE_TAG]
        assert "prune.sparsity=0.95" in parent.data.tags["crossprune.overrides"]
    pruned = [r for r in runs if r.data.tags[STAGE_TAG] == "prune" and r.info.status == "FAILED"]
    assert len(pruned) == len(failed) and all(re.match(COLLAPSE, r.data.tags[FAILURE_TAG]) for r in pruned)
    assert all(r.info.status == "FINISHED" for r in runs if r.data.tags[STAGE_TAG] in ("train_a", "score"))


def test_the_table_lists_the_failed_points_and_one_line_counts_them(sweep):
    done, runs, _ = sweep
    failed = sum(r.data.tags[STAGE_TAG] == "pipeline" and r.info.status == "FAILED" for r in runs)
    rows = [line for line in done.stdout.splitlines() if re.match(r"^ 0\.95? ", line)]  # prune.sparsity first
    assert len(rows) == 6 and sum(line.rstrip().endswith("│ prune") for line in rows) == failed
    assert sum("FAILED" in line for line in done.stderr.splitlines()) == failed  # one line as each one fails
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"crossprune: {failed} of 6 points failed: prune.sparsity=0.95 criterion=magnitude")
    assert "pruning removes every weight of layers." in last


def test_the_report_run_carries_each_verdict_as_metrics(sweep, tmp_path):
    """The study's report: every verdict's effect (and n; a CI needs two seeds) as metrics of the report run, its
    verdict as a tag, the source commit, and the ids of the FINISHED parents it read."""
    _, runs, cwd = sweep
    done = subprocess.run([str(Path(CLI).with_name("crossprune-report")), "study=sanity", f"report.out={tmp_path}"],
                          cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")})
    assert done.returncode == 0, done.stderr
    client = MlflowClient(f"sqlite:///{cwd}/mlruns/mlflow.db")
    (report,) = client.search_runs([runs[0].info.experiment_id], "tags.`crossprune.stage` = 'report'")
    verdicts = [line.split("│")[1:3] for line in done.stdout.splitlines() if re.match(r"^│ sanity", line)]
    assert verdicts and all(f"{c.strip()}.{p.strip()}/effect" in report.data.metrics for c, p in verdicts)
    assert all(report.data.metrics[f"{c.strip()}.{p.strip()}/n"] == 1 for c, p in verdicts)  # one seed
    assert report.data.tags["mlflow.source.git.commit"] and "crossprune.verdict.sanity.digits_split" in report.data.tags
    finished = {r.info.run_id for r in runs if r.data.tags[STAGE_TAG] == "pipeline" and r.info.status == "FINISHED"}
    assert set(report.data.tags["crossprune.runs_read"].split()) == finished


def test_sweep_with_cfg_is_one_line(tmp_path):
    done = crossprune(tmp_path, "-m", "seed=0,1", "--cfg", "job")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("crossprune: --cfg shows one job and -m runs a sweep: drop -m and give each key "
                                   "one value (e.g. seed=0, not seed=0,1) to see that job")
