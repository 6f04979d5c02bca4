"""A job whose pipeline already finished answers from the store: one new parent, no stage run, no torch."""

import json
import os
import subprocess
import sys

import numpy as np
from mlflow.tracking import MlflowClient

from crossprune import answer, parent
from crossprune.tracking import STAGE_TAG
from conftest import SHRINK, SMALL

ALL_STAGES = ["train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"]
PROBE = """import sys
from crossprune.cli import main
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
