"""What the report says about what went wrong and what it cannot see: a language model's damage in its own terms
(perplexity, next-token accuracy), study points that did not finish, and test splits too small for the min effect."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from scipy import stats as scipy_stats
from test_report import STUDY, TRAIN_A, fake_run, log, parent
from test_report_words import OFFSETS, SEEDS, digits, run, words
from torch import nn

from crossprune.cli.report import report
from crossprune.data import Split, build_pair
from crossprune.models import MLP
from crossprune.report import claims, damage, damage_lm, render, runs
from crossprune.stages.compute import Compute
from crossprune.stages.evaluate import evaluate
from crossprune.stages.evaluate_lm import measure
from crossprune.store.tracking import flat_params

DENSE_PPL = {"A": 5.0, "B": 20.0}
DENSE_ACC = {"A": 0.6, "B": 0.3}
RISE = {0.5: 1.2, 0.8: 2.0}  # B's perplexity over the dense value, by sparsity (× (1 + the seed's offset))


def lm_study() -> list:
    """Wanda calibrated on A (the baseline) and on B on a text pair, pruned and not fine-tuned."""
    out = []
    dense = {f"{t}/{k}": v for t in "AB" for k, v in (("ppl", DENSE_PPL[t]), ("acc", DENSE_ACC[t]),
                                                       ("loss", np.log(DENSE_PPL[t])))} | {"B/chance": 0.15, "A/chance": 0.1}
    for s, o in zip(SEEDS, OFFSETS):
        for sparsity, rise in RISE.items():
            for data in "AB":
                b_ppl = DENSE_PPL["B"] * rise * (1 + o) * (0.9 if data == "B" else 1)
                prune = {"B/ppl": b_ppl, "B/loss": np.log(b_ppl), "B/acc": DENSE_ACC["B"] - 0.1 * rise + o,
                         "A/ppl": DENSE_PPL["A"] * 1.1, "A/acc": DENSE_ACC["A"] - 0.05}
                out.append(run("lm_code_prose", s, {"train_a": dense, "prune": prune}, model="CausalLM", criterion__name="wanda",
                               score__data=data, prune__sparsity=sparsity))
    return out


def interval(x, form: str = ".3f") -> str:
    x = np.asarray(x, dtype=float)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return f"{x.mean():{form}} [{x.mean() - half:{form}}, {x.mean() + half:{form}}]"


def test_a_language_model_says_what_it_measured_after_pruning():
    """Perplexity (from the dense value, and the ratio to it) and next-token accuracy; no fixed head."""
    said = words(runs.tabulate(lm_study()))
    assert set(said) == {damage_lm.TITLE}
    assert damage_lm.TITLE == "B's and A's perplexity and next-token accuracy, right after pruning (calibrated on A)"
    first, second = said[damage_lm.TITLE]
    assert first.startswith("**lm_code_prose, sparsity 0.8** — wanda scored on A: ") and second.startswith("**lm_code_prose, sparsity 0.5**")
    ppl = DENSE_PPL["B"] * RISE[0.8] * (1 + OFFSETS)
    log = np.log(ppl / DENSE_PPL["B"])
    half = scipy_stats.t.ppf(0.975, 2) * log.std(ddof=1) / np.sqrt(3)
    ratio = f"×{np.exp(log.mean()):.3f} [{np.exp(log.mean() - half):.3f}, {np.exp(log.mean() + half):.3f}] the dense value"
    assert f"B's perplexity rises from 20.00 (dense train_a) to {interval(ppl, '.2f')}, {ratio}" in first
    acc = DENSE_ACC["B"] - 0.2 + OFFSETS
    assert (f"B's next-token accuracy falls from 0.300 to {interval(acc)} (change {interval(acc - 0.3, '+.3f')}); "
            f"always guessing B's most frequent token scores 0.150") in first
    assert "A's perplexity rises from 5.00 to 5.50 [5.50, 5.50], ×1.100 [1.100, 1.100] the dense value" in first
    assert "A's next-token accuracy falls from 0.600 to 0.550 [0.550, 0.550] (change -0.050 [-0.050, -0.050])" in first
    assert first.endswith("(n = 3 seeds).") and "fixed head" not in first
    intro = next(b[1] for b in damage.section(runs.tabulate(lm_study()), 0.95) if b[0] == "p")
    assert "A perplexity's interval is clipped at 1" in intro


def test_a_vision_and_a_language_pair_keep_their_own_words():
    said = words(runs.tabulate(digits(scratch=False) + lm_study()))
    assert {damage_lm.TITLE, "B through A's fixed head, and A's own accuracy, right after pruning"} <= set(said)
    assert all(s.startswith("**p_digits") for s in said["B through A's fixed head, and A's own accuracy, right after pruning"])
    assert all(s.startswith("**lm_code_prose") for s in said[damage_lm.TITLE])


# ---- points that did not finish

REASON_NAN = "train_a: the loss became nan at epoch 1 of 15, batch 2: train.optimizer.lr=1e+30 is likely too high"
REASON_LAYER = "prune: pruning removes every weight of layers.0"


@pytest.fixture(scope="module")
def failing(tmp_path_factory, compose_at):
    """A study whose points end every way: finished, FAILED (twice with one reason, once with another), KILLED,
    FAILED then finished on rerun (finished), finished then FAILED on rerun (its finished run is read)."""
    root = tmp_path_factory.mktemp("failing")
    cfg = compose_at(root, f"study.name={STUDY}", f"report.out={root / 'out'}")
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.create_experiment(cfg.tracking.experiment, (root / "artifacts").as_uri())
    base = flat_params(cfg) | {"study.name": STUDY}
    starts = iter(range(1000, 2000))  # later runs newer (MLflow reads a start_time of 0 as now)

    def point(seed: int, pair: str = "p_up", *ends: tuple[str, str | None]) -> None:
        for status, reason in ends or [("FINISHED", None)]:
            spec = parent(base, seed, pair, {"train_a": TRAIN_A, "prune": {"A/acc": 0.8 + seed / 100}})
            run_id = log(client, experiment, spec, next(starts))
            if status != "FINISHED":
                client.set_terminated(run_id, status)
            if reason:
                client.set_tag(run_id, "crossprune.failure", reason)

    for seed in range(3):
        point(seed)
    point(3, "p_up", ("FAILED", REASON_NAN), ("FAILED", REASON_NAN))
    point(4, "p_up", ("FAILED", REASON_LAYER))
    point(5, "p_up", ("KILLED", None))
    point(6, "p_up", ("FAILED", REASON_NAN), ("FINISHED", None))
    point(7, "p_up", ("FINISHED", None), ("FAILED", REASON_LAYER))
    _, out, run_id = report(cfg)
    return SimpleNamespace(client=client, out=out, run_id=run_id, md=(out / "report.md").read_text())


def test_points_that_did_not_finish_are_counted_near_the_top(failing):
    said = ("**3 of 8 points of this study did not finish (2 FAILED, 1 KILLED): their runs are not read.** The first "
            f"reasons (crossprune.failure): “{REASON_LAYER}”; “{REASON_NAN}”.")  # newest first
    assert said in failing.md
    assert failing.md.index("# crossprune report") < failing.md.index(said) < failing.md.index("## What went wrong")
    read = pd.read_csv(failing.out / "runs.csv").drop_duplicates("parent_id")
    assert sorted(read["seed"]) == [0, 1, 2, 6, 7]  # the rerun that finished, and the finished run a failed rerun left


def test_the_report_run_holds_the_counts(failing):
    metrics = failing.client.get_run(failing.run_id).data.metrics
    assert {k: v for k, v in metrics.items() if k.startswith("points")} == {
        "points": 8, "points_unfinished": 3, "points_unfinished/FAILED": 2, "points_unfinished/KILLED": 1}


def test_a_study_whose_points_all_finished_says_nothing_of_it():
    def at(status: str, start: int, seed: int = 0):
        spec = run("p", seed, {"train_a": {"A/acc": 0.9}})
        spec.info.status, spec.info.start_time = status, start
        return spec

    rerun = [at("FAILED", 0), at("FINISHED", 1), at("FINISHED", 0, seed=1)]
    rerun[0].data.params = rerun[1].data.params  # the same point, failed, then finished
    left = runs.unfinished(rerun)
    assert (left.points, left.count, left.reasons) == (2, 0, ())
    table = runs.tabulate([r for r in rerun if r.info.status == "FINISHED"])
    table.attrs[runs.UNFINISHED] = left
    assert render.unfinished(table) == [] and render.unfinished(runs.tabulate(rerun[1:])) == []
    left = runs.unfinished([at("RUNNING", 2, seed=2), *rerun])
    assert runs.said(left) == "1 of 3 points of this study did not finish (0 FAILED, 0 KILLED, 1 RUNNING)"


# ---- test splits too small for the min effect


def test_every_evaluation_logs_its_test_split_sizes(make_cfg):
    """`A/n_test` and `B/n_test`: the test images of a classifier (digits' B: ~224), the token positions of an LM."""
    cfg = make_cfg()
    pair = build_pair(cfg.pair)
    torch.manual_seed(0)
    m = evaluate(MLP([1, 8, 8], 5, hidden=[32, 16]), pair.a.classes, pair, cfg.eval.probe, Compute.of(cfg))
    assert (m["A/n_test"], m["B/n_test"]) == (len(pair.a.test), len(pair.b.test)) and 200 < m["B/n_test"] < 250

    class Tiny(nn.Module):  # a language model as measure() reads one: blocks, and logits [batch, vocab, positions]
        def __init__(self):
            super().__init__()
            self.embed, self.blocks, self.out = nn.Embedding(8, 4), nn.ModuleList([nn.Linear(4, 4)]), nn.Linear(4, 8)

        def forward(self, x):
            return self.out(self.blocks[0](self.embed(x))).transpose(1, 2)

    tokens = torch.randint(0, 8, (5, 6))
    scores, _ = measure(Tiny(), Split(tokens, tokens.roll(-1, 1)), Compute(torch.device("cpu"), 12, None))
    assert scores["n_test"] == 30  # 5 sequences × 6 positions, every one scored


def test_a_verdict_on_a_test_split_too_small_for_the_min_effect_says_so():
    """Capacity on B's fixed head: one accuracy near 0.63 on 224 test images has SE ≈ 0.032 > 0.01; on 100 000 it is
    0.0015. The note is added; the verdicts stay what they were without the sizes."""
    def study(sizes: bool) -> list:
        out = []
        for pair, n in (("small", 224), ("large", 100_000)):
            for seed, noise in enumerate(OFFSETS):
                for data, value in (("A", 0.6), ("B", 0.65 + noise)):
                    spec = fake_run(pair, seed, data, value)
                    spec.data.metrics |= {f"{s}/B/n_test": n for s in ("train_a", "prune")} if sizes else {}
                    out.append(spec)
        return out

    judged = claims.judge(runs.tabulate(study(True)), 0.01, 0.95)
    rows = judged.verdicts.set_index("pair")
    p = (0.6 * len(OFFSETS) + (0.65 + OFFSETS).sum()) / (2 * len(OFFSETS))  # the mean of the A- and B-scored accuracies
    assert rows.loc["small", "note"] == (f"one B accuracy on 224 test samples has SE {np.sqrt(p * (1 - p) / 224):.3f} > min "
                                         "effect 0.01: the paired seeds carry the verdict")
    assert rows.loc["large", "note"] == "" and rows.loc["small", "note"].startswith("one B accuracy on 224 test samples has SE 0.032")
    without = claims.judge(runs.tabulate(study(False)), 0.01, 0.95).verdicts
    assert (without["note"] == "").all()
    assert judged.verdicts.drop(columns="note").equals(without.drop(columns="note"))  # labels, effects, rules unchanged
    md = render.markdown(render.document("s", runs.tabulate(study(True)), judged, [], 0.01, 0.95, {}))
    assert f"Note: {rows.loc['small', 'note']}." in md and md.count("Note: ") == 1
