"""The report on synthetic studies with known effects: verdicts, intervals, de-duplication, files, the run, the CLI."""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats

from crossprune.cli.report import report
from crossprune.config.errors import ConfigError
from crossprune.report import claims, plots, runs, stats
from crossprune.store.tracking import flat_params

CLI = str(Path(sys.executable).with_name("crossprune-report"))
STUDY = "synthetic"
OFFSETS = np.array([0.03, -0.02, 0.01, -0.03, 0.02])  # per-seed noise: mean 0.002, sd 0.026
SEEDS = range(len(OFFSETS))
TRAIN_A = {"A/acc": 0.9, "B/fixed_head_acc": 0.8, "B/probe_acc_raw": 0.5, "B/probe_acc_init": 0.4, "dissimilarity/mmd": 0.1}
SANITY = {"p_up": 0.2, "p_zero": 0.0, "p_down": -0.2}  # A/acc of magnitude minus its within-layer shuffle
SEVERITY_MMD = {0.0: 0.01, 0.5: 0.05, 1.0: 0.2}
LAYERS = {("layers.0",): 0.85, ("layers.2",): 0.80, ("layers.0", "layers.2"): 0.60}  # dense 0.9: interaction 0.15
EPOCHS = 3
CURVES = ("finetune_b", "scratch_b_dense", "scratch_b_sparse")  # stage runs with per-epoch val/acc (p_init only)
INIT_SEEDS = 5  # Holm across the report's rows: three seeds of this spread no longer decide init_sparse


def parent(base: dict, seed: int, pair: str, stages: dict, **config) -> dict:
    """A pipeline run as the contract has it: params, tags and `<stage>/<metric>` metrics."""
    params = base | {"seed": str(seed), "data_seed": str(seed), "pair.name": pair, "study.name": STUDY}
    params |= {k.replace("__", "."): str(v) for k, v in config.items()}
    free = params["criterion.name"] in ("magnitude", "random", "synflow")
    tags = {"crossprune.stage": "pipeline", "crossprune.study": STUDY, "crossprune.criterion": params["criterion.name"],
            "crossprune.score_data": "none" if free else params["score.data"], "crossprune.order": params["order"],
            "crossprune.stages": ",".join(stages)}
    return {"params": params, "tags": tags, "stages": stages}


def logged(base: dict) -> list[dict]:
    """The study logged to MLflow: sanity at three known effects, capacity through a saturated instrument, init curves."""
    out = []
    for s, o in zip(SEEDS, OFFSETS):
        for pair, effect in SANITY.items():
            out.append(parent(base, s, pair, {"train_a": TRAIN_A, "prune": {"A/acc": 0.7 + effect + o}}))
            out.append(parent(base, s, pair, {"train_a": TRAIN_A, "prune": {"A/acc": 0.7}}, control__name="shuffle_within_layer"))
        # a real capacity effect read through a fixed B head no better than a probe on raw inputs
        saturated = TRAIN_A | {"B/fixed_head_acc": 0.55, "B/probe_acc_raw": 0.6}
        out.append(parent(base, s, "p_sat", {"train_a": saturated, "prune": {"B/fixed_head_acc": 0.5}}, criterion__name="taylor"))
        out.append(parent(base, s, "p_sat", {"train_a": saturated, "prune": {"B/fixed_head_acc": 0.6 + o}},
                          criterion__name="taylor", score__data="B"))
        if s < INIT_SEEDS:
            out.append(parent(base, s, "p_init", {"train_a": TRAIN_A, "prune": {}, "finetune_b": {"B/acc": 0.7 + o / 2},
                                                      "scratch_b_dense": {"B/acc": 0.8}, "scratch_b_sparse": {"B/acc": 0.75}}))
    return out


def in_memory(base: dict) -> list[dict]:
    """The other claims' arms, judged without a store: zero capacity, capacity vs severity, layers, a mitigation."""
    out = []
    cka = {"A/cka/layers.0": 0.9, "A/cka/layers.2": 0.7, "B/cka/layers.0": 0.8, "B/cka/layers.2": 0.5}
    for s, o in zip(SEEDS, OFFSETS):
        for data, capacity, finetuned in (("A", 0.6, 0.7), ("B", 0.6 + o / 10, 0.75 + o)):  # scoring on B helps fine-tuning
            out.append(parent(base, s, "p_cap0", {"train_a": TRAIN_A, "prune": {"B/fixed_head_acc": capacity, "mask_iou_AB": 0.5, **cka},
                                                  "finetune_b": {"B/acc": finetuned, **cka}}, criterion__name="taylor", score__data=data))
        for severity, mmd in SEVERITY_MMD.items():  # capacity grows with severity, and so does dissimilarity
            shifted = TRAIN_A | {"dissimilarity/mmd": mmd}
            for data, value in (("A", 0.6), ("B", 0.6 + 0.1 * severity + o / 10)):
                out.append(parent(base, s, "p_shift", {"train_a": shifted, "prune": {"B/fixed_head_acc": value}},
                                  criterion__name="taylor", score__data=data, pair__severity=severity))
        for layers, acc in LAYERS.items():
            noisy = acc + (o if len(layers) == 2 else 0)
            out.append(parent(base, s, "p_layers", {"train_a": TRAIN_A, "prune": {"A/acc": noisy, "B/fixed_head_acc": noisy - 0.1}},
                              prune__scope="layers", prune__layers=list(layers)))
    return out


def as_run(spec: dict, start: int = 0):
    """A spec as the object MLflow's search returns, for judging without a store."""
    tags = spec["tags"] | {f"crossprune.run.{stage}": uuid.uuid4().hex for stage in spec["stages"]}
    metrics = {f"{stage}/{k}": v for stage, ms in spec["stages"].items() for k, v in ms.items()}
    return SimpleNamespace(info=SimpleNamespace(run_id=uuid.uuid4().hex, start_time=start),
                           data=SimpleNamespace(params=spec["params"], tags=tags, metrics=metrics))


def log(client: MlflowClient, experiment: str, spec: dict, start: int) -> str:
    """One parent run (and, for p_init, stage runs with per-epoch val/acc) in a few batched calls."""
    run_ids = {}
    for stage, metrics in spec["stages"].items():
        if stage in CURVES:
            child = client.create_run(experiment, start_time=start, tags={"crossprune.stage": stage})
            final = metrics.get("B/acc", 0.9)
            curve = [Metric("val/acc", final - 0.1 * (EPOCHS - 1 - e), start, e) for e in range(EPOCHS)]
            client.log_batch(child.info.run_id, metrics=curve)
            client.set_terminated(child.info.run_id)
            run_ids[stage] = child.info.run_id
        else:
            run_ids[stage] = uuid.uuid4().hex  # a cached run made elsewhere: only the curve plot reads stage runs
    run = client.create_run(experiment, start_time=start, tags=spec["tags"], run_name="synthetic")
    metrics = [Metric(f"{stage}/{k}", v, start, 0) for stage, ms in spec["stages"].items() for k, v in ms.items()]
    params = [Param(k, v) for k, v in spec["params"].items()]
    tags = [RunTag(f"crossprune.run.{stage}", i) for stage, i in run_ids.items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, metrics=metrics if i == 0 else [], params=params[i:i + 100], tags=tags if i == 0 else [])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory, compose_at):
    """An empty experiment in a store of its own, and the config that reports on it."""
    root = tmp_path_factory.mktemp("report")
    cfg = compose_at(root, f"study.name={STUDY}", f"report.out={root / 'out'}")
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.create_experiment(cfg.tracking.experiment, (root / "artifacts").as_uri())
    return SimpleNamespace(root=root, cfg=cfg, client=client, experiment=experiment)


@pytest.fixture(scope="module")
def cli_without_runs(store):
    """`crossprune-report` on a study with no runs, started before the study is logged so that its start-up
    (torch, mlflow) overlaps the logging; a test collects it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = store.root / "cli_out"
    args = ["study.name=nobody", f"tracking.uri={store.cfg.tracking.uri}", f"report.out={out}"]
    process = subprocess.Popen([CLI, *args], cwd=store.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield SimpleNamespace(process=process, out=out)
    process.kill()


@pytest.fixture(scope="module")
def study(store, cli_without_runs):
    """The synthetic study logged (with one earlier run of a parent's exact config), and the report made of it."""
    base = flat_params(store.cfg) | {"study.name": STUDY}
    all_specs = logged(base)
    log(store.client, store.experiment, parent(base, 0, "p_up", {"train_a": TRAIN_A, "prune": {"A/acc": 0.1}}), 1)
    for i, spec in enumerate(all_specs):
        log(store.client, store.experiment, spec, 1000 + i)
    judged, out, run_id = report(store.cfg)
    return SimpleNamespace(root=store.root, cfg=store.cfg, client=store.client, judged=judged, out=out, run_id=run_id,
                           verdicts=pooled(judged), specs=all_specs)


@pytest.fixture(scope="module")
def memory(tmp_path_factory, compose_at):
    """The in-memory arms, tabulated and judged as the report does, without a store."""
    base = flat_params(compose_at(tmp_path_factory.mktemp("memory"))) | {"study.name": STUDY}
    table = runs.tabulate([as_run(spec) for spec in in_memory(base)])
    judged = claims.judge(table, 0.01, 0.95)
    return SimpleNamespace(table=table, judged=judged, verdicts=pooled(judged))


def pooled(judged) -> pd.DataFrame:
    """The pooled rows (cell `all`) by claim and pair."""
    return judged.verdicts[judged.verdicts["cell"] == "all"].set_index(["claim", "pair"])


def expected(per_seed) -> tuple[float, float, float]:
    x = np.asarray(per_seed)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


@pytest.mark.parametrize("pair, verdict", [("p_up", "supported"), ("p_zero", "inconclusive"), ("p_down", "refuted")])
def test_sanity_verdicts_follow_the_known_effect(study, pair, verdict):
    """+0.2 is supported, 0 ± noise inconclusive, −0.2 refuted; effect and CI are the t-interval over 5 seeds."""
    row = study.verdicts.loc[("sanity", pair)]
    assert row.verdict == verdict and row.n == 5
    assert np.allclose([row.effect, row.ci_low, row.ci_high], expected(SANITY[pair] + OFFSETS), atol=1e-9)
    assert row.rule.endswith("> 0.01") and f"→ {verdict}" in row.rule


def test_a_saturated_instrument_makes_a_real_effect_not_measurable(study):
    row = study.verdicts.loc[("capacity", "p_sat")]
    assert row.verdict == "not measurable" and row.rule.startswith("instrument fails")
    assert row.effect == pytest.approx(0.1 + OFFSETS.mean()) and row.ci_low > 0  # the effect is there, the instrument is not


def test_capacity_at_zero_effect_is_not_supported(memory):
    row = memory.verdicts.loc[("capacity", "p_cap0")]
    assert row.effect == pytest.approx(OFFSETS.mean() / 10)
    assert row.verdict == "refuted"  # an effect of 0.01 is excluded


def test_capacity_at_zero_effect_is_rarely_supported_over_many_studies():
    """200 null studies (noise sd = min effect): supported needs CI low > 0, so at most the one-sided 2.5%."""
    rng, fake = np.random.default_rng(0), []
    for study_no in range(200):
        for seed, noise in enumerate(rng.normal(0, 0.01, 5)):
            for data, value in (("A", 0.6), ("B", 0.6 + noise)):
                fake.append(fake_run(f"null{study_no}", seed, data, value))
    verdicts = claims.judge(runs.tabulate(fake), 0.01, 0.95).verdicts
    capacity = verdicts[verdicts["claim"] == "capacity"]
    assert len(capacity) == 200 and (capacity["n"] == 5).all()
    assert (capacity["verdict"] == "supported").mean() <= 0.025
    assert (capacity["ci_low"] > 0).mean() == pytest.approx(0.025, abs=0.02)


def fake_run(pair: str, seed: int, data: str, value: float):
    params = {"pair.name": pair, "seed": seed, "criterion.name": "taylor", "score.data": data, "control.name": "none",
              "order": "prune_then_finetune", "finetune_b.distill.alpha": 0.0, "prune.scope": "global", "prune.sparsity": 0.9}
    tags = {"crossprune.run.train_a": "t", "crossprune.run.prune": "p", "crossprune.score_data": data}
    metrics = {f"train_a/{k}": v for k, v in TRAIN_A.items()} | {"prune/B/fixed_head_acc": value}
    return SimpleNamespace(info=SimpleNamespace(run_id=uuid.uuid4().hex, start_time=0),
                           data=SimpleNamespace(params={k: str(v) for k, v in params.items()}, tags=tags, metrics=metrics))


def test_t_interval_covers_the_true_mean_at_its_nominal_rate():
    rng = np.random.default_rng(1)
    hits = [low <= 0.3 <= high for low, high in (stats.t_interval(rng.normal(0.3, 0.1, 5), 0.95)[1:3] for _ in range(1000))]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_capacity_grows_with_dissimilarity_in_every_seed(memory):
    """Capacity grows with severity, as does mmd: ρ = 1 in each of 5 seeds. Five equal units give a zero-width
    t-interval and the exact sign test a one-sided p of 0.5⁵ = 0.031 > 0.025: inconclusive, with that reason."""
    row = memory.verdicts.loc[("capacity_shift", "p_shift")]
    assert (row.effect, row.ci_low, row.ci_high, row.n, row.verdict) == (1.0, 1.0, 1.0, len(SEEDS), "inconclusive")
    assert "zero spread" in row.rule and "sign test" in row.rule and "0.031" in row.rule
    units = memory.judged.units.query("claim == 'capacity_shift'").sort_values(["seed", "pair.severity"])
    want = [0.1 * s + o / 10 for o in OFFSETS for s in SEVERITY_MMD]
    assert np.allclose(units["effect"], want) and (units["rho"] == 1).all()
    assert list(units["against"]) == list(SEVERITY_MMD.values()) * len(SEEDS)
    # severity 0 is A itself: never averaged into the capacity effect (0.1 × mean(0.5, 1))
    assert memory.verdicts.loc[("capacity", "p_shift")].effect == pytest.approx(0.075 + OFFSETS.mean() / 10)


def test_capacity_shift_needs_three_severities_per_seed():
    """Two severities give no rank correlation worth the name: no interval, inconclusive."""
    levels = pd.DataFrame({"seed": [0, 0, 1, 1], "pair.severity": [0.0, 1.0] * 2, "diff": [0.0, 0.1, 0.0, 0.2]})
    against = pd.Series([0.0, 1.0] * 2, index=pd.MultiIndex.from_frame(levels[["seed", "pair.severity"]]))
    est = stats.rank_correlation(levels, "pair.severity", against, 0.95, 3)
    assert est.n == 0 and np.isnan(est.low)


def test_hierarchy_interaction_is_pair_drop_minus_single_drops(memory):
    row = memory.verdicts.loc[("hierarchy", "p_layers")]
    assert np.allclose([row.effect, row.ci_low, row.ci_high], expected(0.15 - OFFSETS), atol=1e-9)
    assert row.verdict == "supported"


@pytest.mark.parametrize("claim, effect", [("init", 0.1), ("init_sparse", 0.05)])
def test_init_claims_compare_scratch_with_finetuning(study, claim, effect):
    row = study.verdicts.loc[(claim, "p_init")]
    assert row.effect == pytest.approx(effect - OFFSETS[:INIT_SEEDS].mean() / 2) and row.verdict == "supported"
    assert row.n == INIT_SEEDS


def test_a_mitigation_is_read_against_the_baseline(memory):
    row = memory.verdicts.loc[("mitigation:score_B", "p_cap0")]
    assert row.effect == pytest.approx(0.05 + OFFSETS.mean()) and row.verdict == "supported"


def test_rows_only_where_the_study_has_both_arms(study, memory):
    assert set(study.verdicts.index) == {*(("sanity", p) for p in SANITY), ("capacity", "p_sat"), ("init", "p_init"),
                                         ("init_sparse", "p_init")}
    assert set(memory.verdicts.index) == {("capacity", "p_cap0"), ("capacity", "p_shift"), ("capacity_shift", "p_shift"),
                                          ("hierarchy", "p_layers"), ("mitigation:score_B", "p_cap0")}


def test_every_figure_is_drawn_when_its_runs_exist(memory):
    names = plots.draw(memory.table, memory.judged, lambda run_id: [], 0.95)
    assert set(names) == {"sparsity_p_cap0", "sparsity_p_shift", "capacity_vs_mmd", "layers_p_layers", "mask_iou", "cka_p_cap0"}


@pytest.mark.parametrize("facts, verdict", [
    (dict(effect=0.5, se=0.05, margin=0.0), "not measurable"),    # a big effect through a broken instrument
    (dict(effect=-0.5, se=0.05, margin=0.0), "not measurable"),   # never refuted either
    (dict(effect=0.02, se=0.004), "supported"),
    (dict(effect=0.005, se=0.001), "refuted"),                    # real but negligible
    (dict(effect=0.005, se=0.005), "inconclusive"),
    (dict(effect=0.3, se=np.nan, n=1), "inconclusive"),
    (dict(effect=-0.5, se=0.0, n=3), "inconclusive"),   # three equal ρ: the sign test's p = 0.125
    (dict(effect=0.5, se=0.0, n=5), "inconclusive"),    # five: 0.031 > 0.025
    (dict(effect=0.5, se=0.0, n=6), "supported"),       # six: 0.016 < 0.025
    (dict(effect=-0.5, se=0.0, n=6), "refuted"),
    (dict(effect=0.5, se=0.0, n=5, confidence=0.9), "supported"),  # 0.031 < 0.05
])
def test_the_verdict_rule(facts, verdict):
    """One row alone (a Holm family of one): its one-sided tests at α = (1 − confidence) / 2."""
    confidence = facts.pop("confidence", 0.95)
    row = dict(claim="c", pair="p", cell="all", statement="", n=5, min_effect=0.01, min_n=2, margin=0.2, floor=0.01,
               instrument="train_a A/acc − max(chance_A)") | facts
    est = stats.Estimate(row["effect"], np.nan, np.nan, row["n"], se=row["se"])
    row |= dict(p=est.p_above(0), p_refute=est.p_below(row["min_effect"]))
    out = claims.decide(pd.DataFrame([row]), confidence).iloc[0]
    assert out.verdict == verdict and f"→ {verdict}" in out.rule
    if row["n"] < 2:
        assert "n too small" in out.rule
    if row["se"] == 0 and verdict == "inconclusive":
        assert "zero spread" in out.rule and "sign test" in out.rule
    if verdict == "inconclusive" and row["se"] > 0:
        assert out.seeds_needed > row["n"] and f"≈ {out.seeds_needed:.0f} seeds" in out.rule


def test_holm_controls_the_family_and_seeds_needed_grows_with_the_spread():
    """Holm's adjusted p-values are monotone, at least the raw ones, at most 1; NaN stays out of the family."""
    adjusted = stats.holm(np.array([0.01, 0.04, np.nan, 0.03, 0.5]))
    assert np.allclose(adjusted[[0, 3, 1, 4]], [0.04, 0.09, 0.09, 0.5]) and np.isnan(adjusted[2])
    assert stats.seeds_needed(0.02, 4, 0.01, 0.025) > stats.seeds_needed(0.01, 4, 0.01, 0.025) > 4


def test_rliable_aggregates_are_the_stratified_bootstrap_and_the_probability_of_improvement():
    """Two tasks: P(treat > base) is the Mann–Whitney statistic per task, averaged; the bootstrap brackets the mean."""
    units = pd.DataFrame({"_task": ["a"] * 3 + ["b"] * 3, "treat": [1.0, 2, 3, 1, 1, 1], "base": [0.0, 0, 0, 1, 1, 1]})
    units["diff"] = units["treat"] - units["base"]
    out = stats.rliable(units, 0.95)
    assert out["poi"] == pytest.approx((1.0 + 0.5) / 2) and out["boot_low"] <= units.groupby("_task")["diff"].mean().mean() <= out["boot_high"]
    assert stats.rliable(units, 0.95) == out  # a fixed bootstrap seed


def test_null_studies_rarely_support_and_real_effects_mostly_do():
    """Synthetic studies through THE rule (Holm across 12 rows, 10 seeds each, seed SD equal to the minimum effect):
    with every claim at zero effect at most 5% of studies have any supported row; with every claim at 2× the
    minimum effect most rows are supported. The rates measured here are the README's."""
    rng, min_effect, sd, n, k, studies = np.random.default_rng(7), 0.01, 0.01, 10, 12, 400

    def study(true: float) -> pd.Series:
        rows = []
        for i in range(k):
            x = true + sd * rng.standard_normal(n)
            est = stats.Estimate(*stats.t_estimate(x, 0.95)[:4], se=stats.t_estimate(x, 0.95)[4])
            rows.append(dict(claim=f"c{i}", pair="p", cell="all", statement="", effect=est.effect, n=n, min_effect=min_effect,
                             min_n=2, margin=0.2, floor=min_effect, instrument="i", p=est.p_above(0),
                             p_refute=est.p_below(min_effect), se=est.se))
        return claims.decide(pd.DataFrame(rows), 0.95)["verdict"]

    null = np.mean([(study(0.0) == "supported").any() for _ in range(studies)])
    real = np.mean([(study(2 * min_effect) == "supported").mean() for _ in range(studies // 4)])
    assert null <= 0.05 and real > 0.5, (null, real)  # measured: 0.25% of null studies, 99.8% of real rows


def test_duplicates_keep_the_newest_parent(study):
    table = pd.read_csv(study.out / "runs.csv")
    up0 = table.query("`pair.name` == 'p_up' and seed == 0 and `control.name` == 'none' and stage == 'prune'")
    assert len(up0) == 1 and up0["A/acc"].item() == pytest.approx(0.9 + OFFSETS[0])
    assert table["parent_id"].nunique() == len(study.specs)


def test_runs_csv_has_one_row_per_parent_and_stage(study):
    table = pd.read_csv(study.out / "runs.csv")
    assert len(table) == sum(len(s["stages"]) for s in study.specs)
    assert table.groupby(["parent_id", "stage"]).size().eq(1).all()
    columns = list(table.columns)
    assert columns[columns.index("stage"):columns.index("stage") + 7] == runs.ROW
    assert "model" in columns and not any("_target_" in c or "_partial_" in c for c in columns)
    assert set(table["prune.layers"]) == {"[]"} and set(table["model.hidden"]) == {"[32, 16]"}  # lists as logged
    assert table.loc[table["criterion.name"] == "magnitude", "score_data"].eq("none").all()


def test_files_and_the_report_run(study):
    out = study.out
    for name in ("runs.csv", "verdicts.csv", "effects.csv", "report.md", "report.html", "sparsity_p_up.png", "curves_p_init.png"):
        assert (out / name).stat().st_size > 0, name
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert list(verdicts.columns) == claims.COLUMNS and list(verdicts.columns[:3]) == ["claim", "pair", "cell"]
    md = (out / "report.md").read_text()
    assert md.index("## Verdicts") < md.index("| claim |") < md.index("## The rule") < md.index("## Claims")
    assert claims.RULE in md and "Saturated instrument — p_sat" in md and "git commit" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == md.count("![")
    run = study.client.get_run(study.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == f"report · {STUDY}"
    assert run.data.tags["crossprune.stage"] == "report" and run.data.tags["crossprune.study"] == STUDY
    assert {a.path for a in study.client.list_artifacts(study.run_id)} == {p.name for p in out.iterdir()}


def test_bad_input_raises_before_anything_is_written(study, compose_at, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cases = {
        "no study": (["study.name=null"], "no study"),
        "unwritable out": ([f"report.out={blocker}/report"], "cannot be created"),
        "no store": ([f"tracking.uri=sqlite:///{tmp_path}/none/mlflow.db"], "no MLflow store"),
        "no runs": (["study.name=nobody"], "no finished pipeline runs of study nobody"),
    }
    for overrides, says in cases.values():
        cfg = compose_at(study.root, f"study.name={STUDY}", f"report.out={tmp_path}/out", *overrides)
        with pytest.raises(ConfigError, match=says):
            report(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_cli_exits_2_with_one_line_for_a_study_without_runs(cli_without_runs):
    stdout, stderr = cli_without_runs.process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert cli_without_runs.process.returncode == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("crossprune-report: no finished pipeline runs of study nobody")
    assert not cli_without_runs.out.exists()
