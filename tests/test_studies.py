"""Studies: the union of grids, every preset run end to end with tiny budgets and judged, and the main command."""

import csv
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from crossprune.cli.report import report
from crossprune.cli.sweeper import across_seeds, jobs_of, study_jobs
from fashion_data import write

ROOT = Path(__file__).resolve().parents[1]
STUDIES = sorted(p.stem for p in (ROOT / "conf" / "study").glob("*.yaml"))
MNIST1D = ["pair.num_samples=600"]  # 60 signals per class: a draw takes a tenth of a second
NARROW = {  # each preset cut to two seeds and one cell per arm, so that every claim it serves still gets a verdict
    "capacity": ["criterion=taylor", "pair.severity=0", "prune.sparsity=0.5", *MNIST1D],
    "hierarchy": ["prune.sparsity=0.9", "prune.layers=[layers.0],[layers.2],[layers.0,layers.2]", *MNIST1D],
    "init": ["prune.sparsity=0.8", *MNIST1D],
    "mitigations": ["prune.sparsity=0.8", *MNIST1D],
    "sanity": ["pair=digits_split", "prune.sparsity=0.9"],
    "fashion_capacity": ["criterion=taylor", "pair.severity=0", "prune.sparsity=0.5", "pair.root={fashion}"],  # tiny IDX files
    "fashion_hierarchy": ["prune.sparsity=0.9", "prune.layers=[layers.0],[layers.3],[layers.0,layers.3]", "pair.root={fashion}"],
    "fashion_init": ["prune.sparsity=0.8", "pair.root={fashion}"],
    "seed_claims": ["++pair.num_samples=600", "++pair.root={fashion}"],  # only the grids whose pair reads them; this wins
    "lm_calibration": ["criterion=wanda", "prune.sparsity=0.3,0.7", "pair.a.max_bytes=20000", "pair.seqlen=32",
                       "pair.b.paths=[/usr/share/common-licenses]",  # on every Debian machine: no set-up for the test
                       "model.config.hidden_size=32", "model.config.intermediate_size=64", "model.config.num_attention_heads=2",
                       "model.config.num_key_value_heads=2", "train_a.epochs=1", "score.nsamples=8"],
}
CLAIMS = {
    "capacity": {"capacity"},
    "hierarchy": {"hierarchy"},
    "init": {"init", "init_sparse", "init_random_mask"},
    "mitigations": {"mitigation:score_B", "mitigation:mix", "mitigation:finetune_then_prune", "mitigation:distill"},
    "sanity": {"sanity", "sanity_random"},
    "fashion_capacity": {"capacity"},
    "fashion_hierarchy": {"hierarchy"},
    "fashion_init": {"init", "init_sparse", "init_random_mask"},
    "lm_calibration": {"lm_calibration_cost", "lm_mix_near_best_A", "lm_mix_near_best_B", "lm_gap_grows"},  # report/claims_lm.py
}


def test_parallel_workers_start_on_different_seeds():
    """Under joblib the jobs go out seed by seed in turn: neighbours (what two workers take at once) differ in seed;
    every job is launched once; jobs without a seed keep their order."""
    jobs = study_jobs({"seed": "0,1,2", "prune.sparsity": "0.5,0.8"}, {"a": {"control": "none"}, "b": {"control": "distill"}}, [])
    order = across_seeds(jobs)
    seeds = [next(o for o in job if o.startswith("seed=")) for job in order]
    assert sorted(map(sorted, order)) == sorted(map(sorted, jobs)) and len(order) == 12
    assert seeds[:6] == ["seed=0", "seed=1", "seed=2"] * 2 and all(a != b for a, b in zip(seeds, seeds[1:]))
    unseeded = [["prune.sparsity=0.5"], ["prune.sparsity=0.8"]]
    assert across_seeds(unseeded) == unseeded


def test_study_jobs_are_the_union_of_grids_with_the_command_line_winning():
    params = {"seed": "0,1"}
    grids = {"one": {"criterion": "magnitude", "control": "none,shuffle_within_layer"}, "two": {"criterion": "magnitude,random"}}
    jobs = {frozenset(j) for j in study_jobs(params, grids, [])}
    assert len(jobs) == 2 * 2 + 2 * 2  # magnitude with control unset is another point than magnitude with control=none
    assert frozenset({"seed=0", "criterion=magnitude", "control=none"}) in jobs
    narrowed = study_jobs(params, grids, ["seed=1", "control=none"])
    assert sorted(map(sorted, narrowed)) == [["control=none", "criterion=magnitude", "seed=1"],
                                             ["control=none", "criterion=random", "seed=1"]]  # a shared point runs once
    assert study_jobs({"seed": "0,1"}, {}, ["prune.sparsity=0.5"]) == [["seed=0", "prune.sparsity=0.5"], ["seed=1", "prune.sparsity=0.5"]]


@pytest.mark.parametrize("study", [s for s in STUDIES if s != "seed_claims"])
def test_every_study_runs_and_is_judged(study, compose_at, run_pipeline, tmp_path):
    """Each preset, narrowed to two seeds, runs every point and the report judges every claim it serves."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        base = compose("config", overrides=[f"study={study}"], return_hydra_config=True)
    narrow = [o.format(fashion=write(tmp_path / "fashion")) if "{fashion}" in o else o for o in NARROW[study]]
    jobs = jobs_of(base, ["seed=0,1", *narrow])
    assert jobs and all("seed=0" in j or "seed=1" in j for j in jobs)
    for job in jobs:
        run_pipeline(compose_at(tmp_path, f"study={study}", *job))
    cfg = compose_at(tmp_path, f"study={study}", f"report.out={tmp_path / 'report'}")
    judged, out, run_id = report(cfg)
    verdicts = judged.verdicts.set_index("claim")
    assert CLAIMS[study] <= set(verdicts.index)
    assert (verdicts.loc[sorted(CLAIMS[study]), "n"] == 2).all() and verdicts["verdict"].isin(["supported", "refuted", "inconclusive", "not measurable"]).all()
    assert {"report.md", "report.html", "runs.csv", "verdicts.csv"} <= {p.name for p in out.iterdir()}
    if study == "capacity":  # severity 0: A and B are the same data, so scoring on B cannot be better
        assert verdicts.loc["capacity", "effect"] == 0 and verdicts.loc["capacity", "verdict"] != "supported"


def test_the_main_command_runs_the_default_study_and_its_report(tmp_path):
    """What `make run` does (two joblib workers), on two seeds with tiny budgets: one sweep table, then the verdicts
    and the report."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    tiny = ["seed=0,1", "prune.sparsity=0.95", "train_a.epochs=2", "finetune_b.epochs=1", "score.batches=2", "trainer.progress_bar=false",
            "tracking.artifacts=" + str(tmp_path / "artifacts"), "hydra.sweep.dir=" + str(tmp_path / "multirun")]
    bin_ = Path(os.sys.executable).parent
    narrow = [o.format(fashion=write(tmp_path / "fashion")) for o in NARROW["seed_claims"]]
    sweep = subprocess.run([bin_ / "crossprune", "-m", "study=seed_claims", *tiny, *narrow, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert sweep.stdout.count("points ·") == 1 and "prune.layers" in sweep.stdout  # one table, swept values as columns
    done = subprocess.run([bin_ / "crossprune-report", "study=seed_claims"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "study seed_claims" in done.stdout and "report.md" in done.stdout
    folder = tmp_path / "reports" / "seed_claims"
    rows = list(csv.DictReader(open(folder / "verdicts.csv")))
    claims = {r["claim"] for r in rows}
    assert {"capacity", "hierarchy", "init", "sanity", "mitigation:score_B", "mitigation:distill",
            "mitigation:finetune_then_prune"} <= claims
    assert {("capacity", "fashion_gaussian_noise"), ("init", "fashion_gaussian_noise")} <= {(r["claim"], r["pair"]) for r in rows}
    assert {p.suffix for p in folder.iterdir()} >= {".md", ".html", ".csv", ".png"}
