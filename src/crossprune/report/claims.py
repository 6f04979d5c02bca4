"""The claims as data (arms, metric, instrument, minimum effect), estimated from the runs and judged by ONE rule."""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crossprune.report import stats
from crossprune.report.runs import design_columns
from crossprune.report.stats import Estimate

# Every arm starts here and overrides what it tests: plain pruning of A-scored weights, then fine-tuning on B.
BASELINE = {"control.name": "none", "order": "prune_then_finetune", "finetune_b.distill.alpha": 0.0, "score.data": "A"}


def unlike(value) -> Callable:
    return lambda v: v != value


def anything(v) -> bool:
    return True


def positive(v) -> bool:
    return isinstance(v, int | float) and v > 0


@dataclass(frozen=True)
class Arm:
    """Rows of one stage whose columns pass BASELINE overridden by `where` (a value, or a predicate)."""

    stage: str
    where: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Instrument:
    """`metric` at `stage`, read on the reference arm's parents, must beat the max of `beats` by > min_effect."""

    stage: str
    metric: str
    beats: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.stage} {self.metric} − max({', '.join(self.beats)})"


def matched(claim, treat, base, keys, table) -> pd.DataFrame:
    """treat − base in every cell both arms ran."""
    return stats.matched(treat, base, keys, claim.metric)


def compounding(claim, treat, base, keys, table) -> pd.DataFrame:
    """The interaction of each pair of layers with its two single layers and the dense network."""
    return stats.interaction(treat.assign(dense=reference(table, treat, "train_a", claim.metric)), keys, claim.metric)


def over_seeds(claim, diffs, table, confidence) -> dict[str, Estimate]:
    return stats.over_seeds(diffs, confidence)


def across_severities(claim, diffs, table, confidence) -> dict[str, Estimate]:
    """Per pair: per seed, Spearman ρ of the effect at each severity with train_a's dissimilarity/mmd there."""
    diffs = diffs.dropna(subset=["pair.severity"]) if "pair.severity" in diffs else diffs.iloc[:0]
    if diffs.empty:
        return {}
    train_a = table[(table["stage"] == "train_a") & table["pair.name"].isin(diffs["pair.name"])]
    mmd = train_a.groupby(["pair.name", "seed", "pair.severity"])["dissimilarity/mmd"].mean() if "dissimilarity/mmd" in table else None
    none = pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=["seed", "pair.severity"]))
    return {pair: stats.rank_correlation(d, "pair.severity", mmd.xs(pair) if mmd is not None else none, confidence, LEVELS)
            for pair, d in diffs.groupby("pair.name")}


LEVELS = 3  # severities a seed needs for its rank correlation to mean anything


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    metric: str
    treat: Arm  # effect = treat − base: positive is what the claim states
    base: Arm
    instrument: Instrument
    vary: tuple[str, ...] = ()  # columns the arms differ in, left out of the matching
    differences: Callable = matched  # → one row per matched difference, with its cell's columns
    summary: Callable = over_seeds   # differences → {pair: Estimate}
    min_effect: float | None = None  # None: report.min_effect
    min_n: int = 2  # fewer independent units: no interval


FIXED_HEAD = Instrument("train_a", "B/fixed_head_acc", ("B/probe_acc_raw", "B/probe_acc_init"))
A_ABOVE_CHANCE = Instrument("train_a", "A/acc", ("chance_A",))
SCRATCH_ABOVE_CHANCE = Instrument("scratch_b_dense", "B/acc", ("chance_B",))
BASELINE_ABOVE_CHANCE = Instrument("finetune_b", "B/acc", ("chance_B",))
SCORED = {"score_data": unlike("none"), "prune.scope": unlike("layers")}  # data-dependent criteria, whole network
DEPENDENT = {"score_data": unlike("none")}  # data-free criteria give the same masks whatever the score data


def mitigation(name: str, what: str, change: dict, vary: tuple[str, ...], only: dict | None = None) -> Claim:
    return Claim(f"mitigation:{name}", f"{what} ends better on B than the baseline (A-scored, pruned, then fine-tuned)",
                 "B/acc", Arm("finetune_b", change | (only or {})), Arm("finetune_b", only or {}), BASELINE_ABOVE_CHANCE, vary)


CLAIMS = (
    Claim("capacity", "Criteria scored on A throw away capacity B needs: scored on B, the pruned network keeps more "
          "B-readable features (fixed train_a B head)", "B/fixed_head_acc",
          Arm("prune", {"score.data": "B", **SCORED}), Arm("prune", SCORED), FIXED_HEAD, ("score.data",)),
    Claim("capacity_shift", "The capacity lost by scoring on A grows the more A and B differ (per seed, Spearman ρ "
          "of the capacity effect with train_a's dissimilarity/mmd across ≥ 3 severities; a t-interval over seeds)", "B/fixed_head_acc",
          Arm("prune", {"score.data": "B", **SCORED}), Arm("prune", SCORED), FIXED_HEAD, ("score.data",),
          summary=across_severities, min_effect=0.1, min_n=3),
    Claim("hierarchy", "Pruning layers compounds: two layers pruned together cost more A accuracy than their single "
          "drops added", "A/acc", Arm("prune", {"prune.scope": "layers"}), Arm("prune", {"prune.scope": "layers"}),
          A_ABOVE_CHANCE, ("prune.layers",), differences=compounding),
    Claim("init", "Fine-tuning the pruned A weights on B ends worse than training B from scratch (dense, same budget)",
          "B/acc", Arm("scratch_b_dense"), Arm("finetune_b"), SCRATCH_ABOVE_CHANCE),
    Claim("init_sparse", "Fine-tuning the pruned A weights on B ends worse than A's mask on a fresh init trained on B",
          "B/acc", Arm("scratch_b_sparse"), Arm("finetune_b"), SCRATCH_ABOVE_CHANCE),
    Claim("init_random_mask", "Fine-tuning the pruned A weights on B ends worse than a random mask of the same density "
          "on a fresh init", "B/acc", Arm("scratch_b_sparse", {"control.name": "random_same_density"}),
          Arm("finetune_b"), SCRATCH_ABOVE_CHANCE, ("control.",)),
    Claim("sanity", "After training, magnitude masks beat their within-layer shuffles on A (Frankle et al. 2021)",
          "A/acc", Arm("prune", {"criterion.name": "magnitude"}),
          Arm("prune", {"criterion.name": "magnitude", "control.name": "shuffle_within_layer"}), A_ABOVE_CHANCE, ("control.",)),
    Claim("sanity_random", "After training, magnitude masks beat random pruning of the same sparsity on A", "A/acc",
          Arm("prune", {"criterion.name": "magnitude"}), Arm("prune", {"criterion.name": "random"}), A_ABOVE_CHANCE,
          ("criterion.",)),
    mitigation("score_B", "Scoring on B", {"score.data": "B"}, ("score.data",), DEPENDENT),
    mitigation("mix", "Scoring on a mix of A and B", {"score.data": "mix"}, ("score.data",), DEPENDENT),
    mitigation("finetune_then_prune", "Fine-tuning on B before pruning (then scored on any data)",
               {"order": "finetune_then_prune", "score.data": anything}, ("order", "score.data")),
    mitigation("distill", "Distilling from the dense A network fine-tuned on B", {"finetune_b.distill.alpha": positive},
               ("finetune_b.distill.",)),
)

RULE = ("instrument fails → not measurable (never refuted); else CI low > 0 and effect ≥ min effect → supported; "
        "CI high < min effect (an effect of interest is excluded — reversed or negligible) → refuted; "
        "otherwise inconclusive (also when n is too small for an interval, or when all n units are equal and a sign "
        "test on n units cannot reach the confidence)")
OUTCOMES = (  # first match wins: this sequence is RULE
    ("not measurable", lambda e: not e["margin"] > e["floor"],
     "instrument fails: {instrument} = {margin:.3g}, not > min effect {floor:g}"),
    ("inconclusive", lambda e: e["n"] < e["min_n"], "n = {n} < {min_n}: n too small for an interval"),
    # n identical units (a Spearman ρ over 3 severities takes 4 values) give a t-interval of width 0; the exact sign
    # test stands in: n equal signs have a two-sided p of 2·0.5^n, so it takes n ≥ 6 seeds at 95%
    ("inconclusive", lambda e: e["low"] == e["high"] and 2 * 0.5 ** e["n"] > 1 - e["confidence"],
     "all n = {n} units equal {effect:.3g}: zero spread, and a sign test on {n} equal units reaches only "
     "{sign_confidence:.1%} < {confidence:.0%}"),
    ("supported", lambda e: e["low"] > 0 and e["effect"] >= e["min_effect"],
     "CI low {low:.3g} > 0 and effect {effect:.3g} ≥ min effect {min_effect:g}"),
    ("refuted", lambda e: e["high"] < e["min_effect"],
     "CI high {high:.3g} < min effect {min_effect:g}: an effect of interest is excluded"),
    ("inconclusive", lambda e: True,
     "CI [{low:.3g}, {high:.3g}] neither clears 0 with effect ≥ {min_effect:g} nor excludes {min_effect:g}"),
)


def verdict(effect: float, low: float, high: float, n: int, min_effect: float, min_n: int,
            margin: float, floor: float, instrument: str, confidence: float) -> tuple[str, str]:
    """THE verdict rule: the first outcome whose condition holds, and why."""
    facts = dict(effect=effect, low=low, high=high, n=n, min_effect=min_effect, min_n=min_n, margin=margin,
                 floor=floor, instrument=instrument, confidence=confidence, sign_confidence=1 - 2 * 0.5 ** n)
    name, reason = next((name, text) for name, holds, text in OUTCOMES if holds(facts))
    passed = "" if name == "not measurable" else f"; instrument ok: {instrument} = {margin:.3g} > {floor:g}"
    return name, f"{reason.format(**facts)} → {name}{passed}"


@dataclass(frozen=True)
class Judged:
    verdicts: pd.DataFrame  # one row per claim and pair
    units: pd.DataFrame     # the per-seed (or per-severity) effects behind each row


def judge(table: pd.DataFrame, min_effect: float, confidence: float) -> Judged:
    """Every claim on every pair whose runs have both arms in at least one common cell."""
    design, rows_out, units_out = design_columns(table), [], {}
    for claim in CLAIMS:
        treat, base = select(table, claim.treat), select(table, claim.base)
        if treat.empty or base.empty:
            continue
        diffs = claim.differences(claim, treat, base, [c for c in design if not c.startswith(claim.vary)], table)
        margins = instrument_margins(table, base["parent_id"], claim.instrument)
        need = claim.min_effect if claim.min_effect is not None else min_effect
        for pair, est in sorted(claim.summary(claim, diffs, table, confidence).items()):
            name, rule = verdict(est.effect, est.low, est.high, est.n, need, claim.min_n, margins.get(pair, np.nan),
                                 min_effect, str(claim.instrument), confidence)
            rows_out.append(dict(claim=claim.name, pair=pair, statement=claim.statement, effect=est.effect,
                                 ci_low=est.low, ci_high=est.high, n=est.n, verdict=name, rule=rule))
            units_out[(claim.name, pair)] = est.units
    columns = ["claim", "pair", "statement", "effect", "ci_low", "ci_high", "n", "verdict", "rule"]
    units = pd.concat(units_out, names=["claim", "pair", None]).reset_index(level=[0, 1]).reset_index(drop=True) \
        if units_out else pd.DataFrame(columns=["claim", "pair"])
    return Judged(pd.DataFrame(rows_out, columns=columns), units)


def select(rows: pd.DataFrame, arm: Arm) -> pd.DataFrame:
    """The rows of `arm`; a column the runs lack selects nothing."""
    keep = rows["stage"].to_numpy() == arm.stage
    for column, want in (BASELINE | arm.where).items():
        if column not in rows:
            return rows.iloc[:0]
        values = rows[column].to_numpy()
        keep &= np.fromiter(map(want, values), bool, len(values)) if callable(want) else values == want
    return rows[keep]


def reference(rows: pd.DataFrame, target: pd.DataFrame, stage: str, metric: str) -> pd.Series:
    """`metric` of `stage` in each target row's own parent run (e.g. the dense train_a accuracy)."""
    at = rows[rows["stage"] == stage].set_index("parent_id")
    return target["parent_id"].map(at[metric] if metric in at else pd.Series(dtype=float))


def instrument_margins(table: pd.DataFrame, parents: pd.Series, inst: Instrument) -> pd.Series:
    """Per pair, the mean over the reference arm's parents of how far the instrument beats what it must beat
    (NaN where it was not logged)."""
    at = table[(table["stage"] == inst.stage) & table["parent_id"].isin(parents)]
    at = at.reindex(columns=["pair.name", inst.metric, *inst.beats])
    return (at[inst.metric] - at[list(inst.beats)].max(axis=1, skipna=False)).groupby(at["pair.name"]).mean()
