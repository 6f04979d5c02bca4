"""The report's words and plots on a synthetic tidy table with known numbers: the "What went wrong" section, and
the plot defects of issue 17 (legends, reference lines, severity 0, single-value sweeps, CKA bands, lr axis)."""

import uuid
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats as scipy_stats

from crossprune.report import damage, plots, render, runs
from crossprune.report.claims import Judged
from crossprune.stages import figures

OFFSETS = np.array([0.02, -0.01, 0.03])  # per-seed noise
SEEDS = range(len(OFFSETS))
DENSE_A, DENSE_B, CHANCE_B = 0.99, 0.926, 0.2
FIXED_HEAD = {0.8: 0.40, 0.95: 0.28}  # B through A's fixed head after pruning (+ the seed's offset)
KEPT_A = {0.8: 0.98, 0.95: 0.90}
FINETUNED, SCRATCH, SPARSE = 0.80, 0.85, 0.83  # B/acc; fine-tuned gets the offset
IOU_AB = {0.0: 0.80, 1.0: 0.10}  # by severity (+ offset / 2); severity 0: B = A
IOU_AA = 0.75
CKA = (0.99, 0.95, 1.0)  # per seed: a t-interval over these reaches past 1


def run(pair: str, seed: int, stages: dict, **config):
    """A pipeline run as MLflow's search returns it: params (one that follows the seed, as pair seeds do),
    `crossprune.run.<stage>` tags, `<stage>/<metric>` metrics."""
    params = {"pair.name": pair, "seed": seed, "pair.a.split_seed": seed, "criterion.name": "magnitude", "score.data": "A", "control.name": "none",
              "order": "prune_then_finetune", "finetune_b.distill.alpha": 0.0, "prune.scope": "global",
              "prune.sparsity": 0.8} | {k.replace("__", "."): v for k, v in config.items()}
    free = params["criterion.name"] in ("magnitude", "random")
    tags = {f"crossprune.run.{s}": uuid.uuid4().hex for s in stages}
    tags["crossprune.score_data"] = "none" if free else params["score.data"]
    metrics = {f"{s}/{k}": v for s, ms in stages.items() for k, v in ms.items()}
    return SimpleNamespace(info=SimpleNamespace(run_id=uuid.uuid4().hex, start_time=0),
                           data=SimpleNamespace(params={k: str(v) for k, v in params.items()}, tags=tags, metrics=metrics))


def train_a(b: float = DENSE_B) -> dict:
    return {"A/acc": DENSE_A, "B/fixed_head_acc": b, "A/chance": 0.1, "B/chance": CHANCE_B}


def digits(sparsities=(0.8, 0.95), scratch: bool = True, cka: bool = False, **config) -> list:
    """Magnitude pruning on a split pair: the fixed head's fall, A kept, fine-tuning against scratch."""
    out = []
    for s, o in zip(SEEDS, OFFSETS):
        for sparsity in sparsities:
            prune = {"A/acc": KEPT_A.get(sparsity, 0.9) + o, "B/fixed_head_acc": FIXED_HEAD.get(sparsity, 0.3) + o}
            if cka:
                prune |= {"A/cka/layers.0": CKA[s], "A/cka/layers.2": CKA[s] - 0.1}
            stages = {"train_a": train_a(), "prune": prune, "finetune_b": {"B/acc": FINETUNED + o}}
            if scratch:
                stages |= {"scratch_b_dense": {"B/acc": SCRATCH}, "scratch_b_sparse": {"B/acc": SPARSE}}
            out.append(run("p_digits", s, stages, prune__sparsity=sparsity, **config))
    return out


def shift(floor: bool = True, levels=IOU_AB) -> list:
    """Taylor scored on A and on B of a shift pair at one sparsity: severity 0 (B = A) and 1."""
    out = []
    for s, o in zip(SEEDS, OFFSETS):
        for severity, iou in levels.items():
            masks = {"mask_iou_AB": iou + o / 2} | ({"mask_iou_AA": IOU_AA} if floor else {})
            for data in "AB":
                fixed = 0.6 - 0.2 * severity + (0.1 if data == "B" else 0)
                prune = {"B/fixed_head_acc": fixed, "A/acc": 0.9, **masks}
                out.append(run("p_shift", s, {"train_a": train_a(0.7), "prune": prune}, criterion__name="taylor",
                               score__data=data, pair__severity=severity, prune__sparsity=0.7))
    return out


def expected(per_seed, signed: bool = False) -> str:
    """`mean [low, high]` as the report writes a 95% t-interval over seeds (`+mean [+low, +high]` for a change)."""
    x = np.asarray(per_seed, dtype=float)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    form = "+.3f" if signed else ".3f"
    return f"{x.mean():{form}} [{x.mean() - half:{form}}, {x.mean() + half:{form}}]"


def words(table: pd.DataFrame) -> dict[str, list[str]]:
    """The section's statements under each of its headings."""
    out, heading = {}, None
    for block in damage.section(table, 0.95):
        if block[0] == "h" and block[1] == 3:
            heading = block[2]
        elif block[0] == "list":
            out[heading] = block[1]
    return out


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return runs.tabulate(digits() + shift())


def test_the_fixed_head_statement_gives_the_measured_fall_worst_first(table):
    said = words(table)["B through A's fixed head, and A's own accuracy, right after pruning"]
    digits_0_95, digits_0_8 = (next(s for s in said if s.startswith(f"**p_digits, sparsity {x}**")) for x in ("0.95", "0.8"))
    assert said.index(digits_0_95) < said.index(digits_0_8)  # the larger fall first
    assert (f"B read through A's fixed head falls from {DENSE_B:.3f} (dense train_a) to {expected(FIXED_HEAD[0.95] + OFFSETS)}, "
            f"a change of {expected(FIXED_HEAD[0.95] + OFFSETS - DENSE_B, signed=True)}; chance on B is {CHANCE_B:.3f}") in digits_0_95
    assert (f"A's own accuracy falls from {DENSE_A:.3f} to {expected(KEPT_A[0.95] + OFFSETS)} "
            f"(change {expected(KEPT_A[0.95] + OFFSETS - DENSE_A, signed=True)})") in digits_0_95
    assert "magnitude (data-free)" in digits_0_95 and "(n = 3 seeds)" in digits_0_95
    # the shift pair: each severity its own statement; the A-scored cell only (the baseline)
    shifted = [s for s in said if s.startswith("**p_shift")]
    assert len(shifted) == 2 and "severity 0 (B = A)" in shifted[-1] and "taylor scored on A" in shifted[0]
    assert "to 0.400 [0.400, 0.400], a change of -0.300 [-0.300, -0.300]; chance on B is 0.200" in shifted[0]


def test_a_place_with_several_cells_states_its_worst_and_what_sets_it_apart():
    specs = digits(sparsities=(0.95,), scratch=False, prune__kind="unstructured")
    specs += [run("p_digits", s, {"train_a": train_a(), "prune": {"B/fixed_head_acc": 0.6, "A/acc": 0.9}}, prune__kind="structured",
                  criterion__name="taylor", prune__sparsity=0.95) for s in SEEDS]
    [said] = words(runs.tabulate(specs))["B through A's fixed head, and A's own accuracy, right after pruning"]
    assert said.startswith("**p_digits, sparsity 0.95** — magnitude (data-free), prune.kind = unstructured: ")
    assert f"to {expected(FIXED_HEAD[0.95] + OFFSETS)}" in said and said.endswith("(n = 3 seeds; the worst of 2 cells here).")


def test_the_mask_statement_keeps_severity_zero_apart_and_gives_the_floor(table):
    said = words(table)["Mask agreement between scoring on A and scoring on B"]
    assert [s.split("**")[1] for s in said] == ["p_shift, severity 1, sparsity 0.7", "p_shift, severity 0 (B = A), sparsity 0.7"]
    assert f"IoU {expected(IOU_AB[1.0] + OFFSETS / 2)} (n = 3 seeds)" in said[0]
    assert f"agree at {IOU_AA:.3f} [{IOU_AA:.3f}, {IOU_AA:.3f}] (mask_iou_AA, the noise floor)" in said[0]
    assert f"IoU {expected(IOU_AB[0.0] + OFFSETS / 2)}" in said[1] and "B is A" in said[1]
    assert not any("magnitude" in s for s in said)  # data-free masks agree by construction


def test_an_interval_in_words_stays_within_what_the_quantity_can_be():
    [said] = words(runs.tabulate(shift(levels={1.0: 0.97})))["Mask agreement between scoring on A and scoring on B"]
    iou = 0.97 + OFFSETS / 2
    assert iou.mean() + scipy_stats.t.ppf(0.975, 2) * iou.std(ddof=1) / np.sqrt(3) > 1  # unclipped: past 1
    assert f"IoU {iou.mean():.3f} [{expected(iou).split('[')[1].split(',')[0]}, 1.000]" in said


def test_the_finetuning_statement_pairs_scratch_with_finetuning(table):
    said = words(table)["Fine-tuning the pruned A weights on B against training B from scratch"]
    assert len(said) == 2  # one per sparsity
    assert f"ends at {expected(FINETUNED + OFFSETS)}; training B from scratch (dense) reaches {SCRATCH:.3f}" in said[0]
    assert f"scratch minus fine-tuned {expected(SCRATCH - FINETUNED - OFFSETS, signed=True)}" in said[0]
    assert (f"A's mask on a fresh init reaches {SPARSE:.3f} (mask on a fresh init minus fine-tuned "
            f"{expected(SPARSE - FINETUNED - OFFSETS, signed=True)})") in said[0]


def test_nothing_is_said_where_the_runs_lack_the_metric():
    said = words(runs.tabulate(digits(scratch=False) + shift(floor=False)))
    assert set(said) == {"B through A's fixed head, and A's own accuracy, right after pruning",
                         "Mask agreement between scoring on A and scoring on B"}
    assert not any("mask_iou_AA" in s or "two draws" in s for said_there in said.values() for s in said_there)
    blocks = damage.section(runs.tabulate([run("p", 0, {"train_a": train_a()})]), 0.95)
    assert blocks[0] == ("h", 2, "What went wrong") and len(blocks) == 2 and "none of the measurements" in blocks[1][1]


def test_the_section_comes_first_in_the_report(table):
    judged = Judged(pd.DataFrame(columns=["claim", "pair", "statement", "effect", "ci_low", "ci_high", "n", "verdict", "rule"]),
                    pd.DataFrame(columns=["claim", "pair"]))
    md = render.markdown(render.document("s", table, judged, [], 0.01, 0.95, {}))
    assert md.index("## What went wrong") < md.index("### B through") < md.index("## Verdicts")
    assert "\n- **p_digits, sparsity 0.95** — magnitude (data-free): B read through" in md
    html = render.html(render.document("s", table, judged, [], 0.01, 0.95, {}), {}, "t")
    assert "<li><b>p_digits, sparsity 0.95</b> — magnitude" in html


# ---- plots


def lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_the_curves_legend_names_every_line_in_its_colour():
    """The panels hold different lines (taylor only at 0.95): one colour per label, and the legend has them all."""
    specs = digits()
    specs += [run("p_digits", s, {"train_a": train_a(), "prune": {}, "finetune_b": {"B/acc": 0.7}}, criterion__name="taylor",
                  prune__sparsity=0.95) for s in SEEDS]
    table = runs.tabulate(specs)
    curve = {rid: [(0, acc - 0.2), (1, acc - 0.1), (2, acc)] for rid, acc in zip(table["run_id"], table.get("B/acc"))}
    [fig] = plots.curves(table, curve.get, 0.95).values()
    [shown] = fig.legends
    legend = {text.get_text(): handle.get_color() for text, handle in zip(shown.get_texts(), shown.legend_handles)}
    drawn = [(label, line.get_color()) for ax in fig.axes for label, line in lines(ax).items()]
    assert {"finetune_b · taylor", "finetune_b · magnitude", "scratch_b_sparse · magnitude", "chance"} <= set(legend)
    assert all(legend[label] == colour for label, colour in drawn), (legend, drawn)
    assert all(lines(ax)["chance"].get_ydata()[0] == pytest.approx(CHANCE_B) for ax in fig.axes)


def test_accuracy_panels_carry_dense_and_chance_lines(table):
    fig = plots.sparsity(table, 0.95)["sparsity_p_digits"]
    panels = {ax.get_title(): lines(ax) for ax in fig.axes}
    assert panels["A/acc"]["dense train_a (mean over seeds)"].get_ydata()[0] == pytest.approx(DENSE_A)
    assert panels["B/fixed_head_acc"]["dense train_a (mean over seeds)"].get_ydata()[0] == pytest.approx(DENSE_B)
    assert panels["B/fixed_head_acc"]["chance"].get_ydata()[0] == pytest.approx(CHANCE_B)
    assert panels["A/acc"]["chance"].get_ydata()[0] == pytest.approx(0.1)
    assert all(ax.get_xlabel() == plots.SPARSITY for ax in fig.axes)  # two sparsities: a curve


def test_a_single_value_is_never_drawn_as_a_vs_plot(table):
    """One sparsity (the shift pair), one epoch, one severity: points per line, or no figure; never an x axis of one value."""
    fig = plots.sparsity(table, 0.95)["sparsity_p_shift"]
    assert not any(ax.get_xlabel() == plots.SPARSITY for ax in fig.axes)
    ticks = [t.get_text().replace("\n", " · ") for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["taylor · scored on A", "taylor · scored on B"]
    one_epoch = {rid: [(0, 0.5)] for rid in table["run_id"]}
    assert plots.curves(table, one_epoch.get, 0.95) == {}
    units = pd.DataFrame({"claim": "capacity_shift", "pair": "p_shift", "seed": list(SEEDS), "pair.severity": 1.0,
                          "against": 0.1, "effect": OFFSETS})
    assert plots.capacity_vs_mmd(Judged(pd.DataFrame(columns=["claim", "pair"]), units), 0.95) == {}


def test_severity_zero_is_its_own_point_in_the_mask_iou(table):
    [ax] = plots.mask_iou(table, 0.95)["mask_iou"].axes
    ticks = [t.get_text().replace("\n", " · ") for t in ax.get_xticklabels()]
    assert ticks == ["taylor · severity 0 (B = A)", "taylor · severity 1", "taylor · severity 0 (B = A) · A vs A",
                     "taylor · severity 1 · A vs A"]
    points = [line.get_ydata()[0] for line in ax.get_lines() if line.get_marker() == "o"]
    assert points == pytest.approx([IOU_AB[0.0] + OFFSETS.mean() / 2, IOU_AB[1.0] + OFFSETS.mean() / 2, IOU_AA, IOU_AA])


def test_severity_zero_is_its_own_hollow_point_against_dissimilarity():
    units = pd.DataFrame([{"claim": "capacity_shift", "pair": "p_shift", "seed": s, "pair.severity": sev, "against": sev / 10,
                           "effect": sev / 20} for s in SEEDS for sev in (0.0, 0.5, 1.0)])
    verdicts = pd.DataFrame([{"claim": "capacity_shift", "pair": "p_shift", "effect": 1.0, "ci_low": 1.0, "ci_high": 1.0}])
    [ax] = plots.capacity_vs_mmd(Judged(verdicts, units), 0.95)["capacity_vs_mmd"].axes
    zero = lines(ax)["severity 0 (B = A)"]
    assert list(zero.get_xdata()) == [0.0] and zero.get_markerfacecolor() == "white"


def test_the_cka_band_stays_within_one():
    table = runs.tabulate(digits(sparsities=(0.8,), scratch=False, cka=True))
    fig = plots.cka(table, 0.95)["cka_p_digits"]
    bands = [c for ax in fig.axes for c in ax.collections if isinstance(c, PolyCollection)]
    top = max(path.vertices[:, 1].max() for band in bands for path in band.get_paths())
    assert bands and top == pytest.approx(1.0)  # unclipped, the t-interval over CKA reaches 1.03
    assert "clipped to the feasible [0, 1]" in " ".join(fig.get_suptitle().split())  # said in the caption
    assert np.mean(CKA) + scipy_stats.t.ppf(0.975, 2) * np.std(CKA, ddof=1) / np.sqrt(3) > 1


def test_a_stage_curves_figure_keeps_the_learning_rate_off_the_accuracy_axis():
    fig = figures.curves({"train/loss": [1.0, 0.5], "train/lr": [1e-3, 5e-4], "val/acc": [0.6, 0.8]})
    axes = {ax.get_ylabel(): [line.get_label() for line in ax.get_lines()] for ax in fig.axes}
    assert axes == {"loss": ["train/loss"], "accuracy (fraction correct)": ["val/acc"], "learning rate": ["train/lr"]}
