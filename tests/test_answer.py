"""A job whose pipeline already finished answers from the store: one new parent, no stage run, no torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import SHRINK, SMALL
from mlflow.tracking import MlflowClient

from crossprune.store import answer, parent
from crossprune.store.tracking import STAGE_TAG

ALL_STAGES = ["train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"]
PROBE = """import sys
from crossprune.cli.app import main
sys.argv = ['crossprune', *sys.argv[1:]]
try:
    main()
finally:
    print('heavy:', sorted({'torch', 'pytorch_lightning', 'sklearn'} & sys.modules.keys()))
"""


def store_overrides(tmp_path) -> list[str]:
    return [*SHRINK, SMALL["mlp"], f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifacts={tmp_path}/artifacts"]


def test_an_identical_job_answers_from_the_store_without_torch(tmp_path, make_cfg, run_pipeline, store_runs):
    """The same job again (other bookkeeping keys: summary, progress bar) prints every stage cached, adds one FINISHED
    parent that links the first run's stage runs, writes the same metrics, and never imports torch."""
    first = run_pipeline(make_cfg())
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    before = {r.info.run_id for r in store_runs(uri)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    summary = tmp_path / "summary.json"
    out = subprocess.run([sys.executable, "-c", PROBE, *store_overrides(tmp_path), f"summary={summary}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "heavy: []"
    assert all(f"{first[s].run_id[:8]} (cached)" in out.stdout for s in ALL_STAGES)

    new = [r for r in store_runs(uri) if r.info.run_id not in before]
    assert len(new) == 1 and new[0].data.tags[STAGE_TAG] == "pipeline" and new[0].info.status == "FINISHED"
    tags = new[0].data.tags
    assert {s: tags[f"{parent.RUN_TAG}{s}"] for s in ALL_STAGES} == {s: first[s].run_id for s in ALL_STAGES}
    assert all(tags[f"{parent.CACHED_TAG}{s}"] == "true" for s in ALL_STAGES)
    assert tags[parent.JOB_TAG] == answer.job_key(make_cfg())
    assert new[0].data.metrics["finetune_b/B/acc"] == first["finetune_b"].metrics["B/acc"]
    assert json.loads(summary.read_text()) == {s: first[s].metrics for s in ALL_STAGES}
    assert len(new[0].inputs.dataset_inputs) == 2  # A and B in its Datasets panel, as the first parent has them


def test_a_stage_run_failed_since_is_run_again(make_cfg, run_pipeline):
    """A stage run marked FAILED after the parent finished (e.g. found damaged) ends the answer: the pipeline runs,
    reusing every other stage from the cache."""
    cfg = make_cfg()
    first = run_pipeline(cfg)
    assert answer.find(cfg) is not None
    MlflowClient().set_terminated(first["finetune_b"].run_id, "FAILED")
    assert answer.find(cfg) is None
    again = run_pipeline(cfg)
    assert not again["finetune_b"].cached and all(again[s].cached for s in ALL_STAGES if s != "finetune_b")
    assert answer.find(cfg)[1]["finetune_b"].info.run_id == again["finetune_b"].run_id


def test_the_job_key_follows_results_not_bookkeeping(tmp_path, make_cfg):
    """Bookkeeping keys leave the key alone; a value a stage reads, or a data file rewritten in place, changes it."""
    key = answer.job_key(make_cfg())
    assert answer.job_key(make_cfg("summary=x.json", "trainer.progress_bar=true", "study.name=other", "cache=true")) == key
    assert answer.job_key(make_cfg(f"paths.root={tmp_path}/elsewhere", "tracking.log_models=[]", "report.min_effect=0.5")) == key
    assert answer.job_key(make_cfg("prune.sparsity=0.5")) != key
    data = tmp_path / "a.npz"
    np.savez(data, x=np.zeros((40, 4)), y=np.arange(40) % 2)
    npz = make_cfg("pair=npz", f"pair.a.path={data}", f"pair.b.path={data}")
    first = answer.job_key(npz)
    np.savez(data, x=np.ones((40, 4)), y=np.arange(40) % 2)
    os.utime(data, ns=(1, 1))
    assert answer.job_key(npz) != first
    assert answer.job_key(make_cfg("pair=npz")) is None  # paths unset (???): no key, the pipeline says what is missing


def test_cache_false_never_answers(make_cfg, run_pipeline):
    cfg = make_cfg()
    run_pipeline(cfg)
    assert answer.find(cfg) is not None and answer.find(make_cfg("cache=false")) is None


def test_a_sweep_launches_only_the_jobs_the_store_cannot_answer(tmp_path):
    """A sweep run again with one more point: the study sweeper records the two answered points itself (same name
    and overrides as when they ran, tagged with the new sweep) and launches only the new one."""
    cli = str(Path(sys.executable).with_name("crossprune"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    tiny = ["train_a.epochs=1", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false", "stages=[train_a,score,prune]"]

    def sweep(values: str) -> subprocess.CompletedProcess:
        out = subprocess.run([cli, "-m", f"prune.sparsity={values}", *tiny], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    sweep("0.5,0.7")
    again = sweep("0.5,0.7,0.8")
    assert again.stdout.count("answered from the store") == 2 and "Launching 1 jobs" in again.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("crossprune").experiment_id], "tags.`crossprune.stage` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])
    first, second = runs[:2], runs[2:]
    assert [r.data.tags["crossprune.overrides"] for r in first] == [r.data.tags["crossprune.overrides"] for r in second[:2]]
    assert [r.info.run_name for r in first] == [r.info.run_name for r in second[:2]]
    assert len({r.data.tags["crossprune.sweep"] for r in second}) == 1 != len({r.data.tags["crossprune.sweep"] for r in runs})
    assert all(r.info.status == "FINISHED" for r in runs) and "prune.sparsity=0.8" in second[2].data.tags["crossprune.overrides"]
    assert {s: second[0].data.tags[f"{parent.RUN_TAG}{s}"] for s in ("train_a", "prune")} == \
        {s: first[0].data.tags[f"{parent.RUN_TAG}{s}"] for s in ("train_a", "prune")}
    assert "8 points" not in again.stdout and "3 points" in again.stdout  # one table for the whole sweep
    jobs = [p.name for p in Path(tmp_path, second[0].data.tags["crossprune.sweep"]).iterdir() if p.is_dir()]
    assert jobs == []  # no Hydra job folder: none for an answered point, and the launched point's empty one is removed


def test_a_command_never_takes_an_earlier_commands_answer():
    """The preflight's answers belong to one command: the next one in the same process (a notebook, a test) starts
    with none, even when it returns before composing anything."""
    from crossprune.cli import app, sweeper

    sweeper.answered[sweeper.job_id(["prune.sparsity=0.5"])] = ("an earlier command's config", "its answer")
    sweeper.preflighted = True
    app.preflight(["--help"])
    assert sweeper.answered == {} and sweeper.preflighted is False
