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


def paired(claim, treat, base, keys, rows, confidence) -> Estimate:
    return stats.paired(stats.matched(treat, base, keys, claim.metric), confidence)


def compounding(claim, treat, base, keys, rows, confidence) -> Estimate:
    dense = reference(rows, treat, "train_a", claim.metric)
    return stats.paired(stats.interaction(treat.assign(dense=dense), keys, claim.metric), confidence)


def shift(claim, treat, base, keys, rows, confidence) -> Estimate:
    diffs = stats.matched(treat, base, keys, claim.metric)
    train_a = rows[(rows["stage"] == "train_a") & rows["parent_id"].isin(base["parent_id"])]
    mmd = train_a.groupby("pair.severity")["dissimilarity/mmd"].mean() if "pair.severity" in rows else pd.Series()
    return stats.rank_correlation(diffs.dropna(subset=["pair.severity"]), "pair.severity", mmd, confidence, claim.min_n)


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    metric: str
    treat: Arm  # effect = treat − base: positive is what the claim states
    base: Arm
    instrument: Instrument
    vary: tuple[str, ...] = ()  # columns the arms differ in, left out of the matching
    estimate: Callable = paired
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
    Claim("capacity_shift", "The capacity lost by scoring on A grows the more A and B differ (Spearman ρ of the "
          "capacity effect with train_a's dissimilarity/mmd across severities)", "B/fixed_head_acc",
          Arm("prune", {"score.data": "B", **SCORED}), Arm("prune", SCORED), FIXED_HEAD, ("score.data",),
          shift, min_effect=0.1, min_n=3),
    Claim("hierarchy", "Pruning layers compounds: two layers pruned together cost more A accuracy than their single "
          "drops added", "A/acc", Arm("prune", {"prune.scope": "layers"}), Arm("prune", {"prune.scope": "layers"}),
          A_ABOVE_CHANCE, ("prune.layers",), compounding),
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
    mitigation("score_B", "Scoring on B", {"score.data": "B"}, ("score.data",), DEPENDENT),
    mitigation("mix", "Scoring on a mix of A and B", {"score.data": "mix"}, ("score.data",), DEPENDENT),
    mitigation("finetune_then_prune", "Fine-tuning on B before pruning", {"order": "finetune_then_prune"}, ("order",)),
    mitigation("distill", "Distilling from the dense A network fine-tuned on B", {"finetune_b.distill.alpha": positive},
               ("finetune_b.distill.",)),
)

RULE = ("instrument fails → not measurable (never refuted); else CI low > 0 and effect ≥ min effect → supported; "
        "CI high < min effect (an effect of interest is excluded — reversed or negligible) → refuted; "
        "otherwise inconclusive (also when n is too small for an interval)")
OUTCOMES = (  # first match wins: this sequence is RULE
    ("not measurable", lambda e: not e["margin"] > e["floor"],
     "instrument fails: {instrument} = {margin:.3g}, not > min effect {floor:g}"),
    ("inconclusive", lambda e: e["n"] < e["min_n"], "n = {n} < {min_n}: n too small for an interval"),
    ("supported", lambda e: e["low"] > 0 and e["effect"] >= e["min_effect"],
     "CI low {low:.3g} > 0 and effect {effect:.3g} ≥ min effect {min_effect:g}"),
    ("refuted", lambda e: e["high"] < e["min_effect"],
     "CI high {high:.3g} < min effect {min_effect:g}: an effect of interest is excluded"),
    ("inconclusive", lambda e: True,
     "CI [{low:.3g}, {high:.3g}] neither clears 0 with effect ≥ {min_effect:g} nor excludes {min_effect:g}"),
)


def verdict(effect: float, low: float, high: float, n: int, min_effect: float, min_n: int,
            margin: float, floor: float, instrument: str) -> tuple[str, str]:
    """THE verdict rule: the first outcome whose condition holds, and why."""
    facts = dict(effect=effect, low=low, high=high, n=n, min_effect=min_effect, min_n=min_n, margin=margin,
                 floor=floor, instrument=instrument)
    name, reason = next((name, text) for name, holds, text in OUTCOMES if holds(facts))
    passed = "" if name == "not measurable" else f"; instrument ok: {instrument} = {margin:.3g} > {floor:g}"
    return name, f"{reason.format(**facts)} → {name}{passed}"


@dataclass(frozen=True)
class Judged:
    verdicts: pd.DataFrame  # one row per claim and pair
    units: pd.DataFrame     # the per-seed (or per-severity) effects behind each row


def judge(table: pd.DataFrame, min_effect: float, confidence: float) -> Judged:
    """Every claim on every pair whose runs have both arms."""
    design, rows_out, units_out = design_columns(table), [], []
    for claim in CLAIMS:
        keys = [c for c in design if not c.startswith(claim.vary)]
        for pair, rows in table.groupby("pair.name", sort=True):
            treat, base = select(rows, claim.treat), select(rows, claim.base)
            if treat.empty or base.empty:
                continue
            est = claim.estimate(claim, treat, base, keys, rows, confidence)
            if est.n == 0:
                continue  # arms present but never in the same cell
            floor, need = min_effect, claim.min_effect if claim.min_effect is not None else min_effect
            margin = instrument_margin(rows, base["parent_id"], claim.instrument)
            name, rule = verdict(est.effect, est.low, est.high, est.n, need, claim.min_n, margin, floor, str(claim.instrument))
            rows_out.append(dict(claim=claim.name, pair=pair, statement=claim.statement, effect=est.effect,
                                 ci_low=est.low, ci_high=est.high, n=est.n, verdict=name, rule=rule))
            units_out.append(est.units.assign(claim=claim.name, pair=pair))
    columns = ["claim", "pair", "statement", "effect", "ci_low", "ci_high", "n", "verdict", "rule"]
    units = pd.concat(units_out, ignore_index=True) if units_out else pd.DataFrame(columns=["claim", "pair"])
    return Judged(pd.DataFrame(rows_out, columns=columns), units[["claim", "pair", *units.columns.drop(["claim", "pair"])]])


def select(rows: pd.DataFrame, arm: Arm) -> pd.DataFrame:
    """The rows of `arm`; a column the runs lack selects nothing."""
    keep = rows["stage"] == arm.stage
    for column, want in (BASELINE | arm.where).items():
        values = rows[column] if column in rows else pd.Series(np.nan, index=rows.index, dtype=object)
        keep &= values.map(want).astype(bool) if callable(want) else values == want
    return rows[keep]


def reference(rows: pd.DataFrame, target: pd.DataFrame, stage: str, metric: str) -> pd.Series:
    """`metric` of `stage` in each target row's own parent run (e.g. the dense train_a accuracy)."""
    at = rows[rows["stage"] == stage].set_index("parent_id")
    return target["parent_id"].map(at[metric] if metric in at else pd.Series(dtype=float))


def instrument_margin(rows: pd.DataFrame, parents: pd.Series, inst: Instrument) -> float:
    """Mean over the reference arm's parents of how far the instrument beats what it must beat (NaN: not logged)."""
    at = rows[(rows["stage"] == inst.stage) & rows["parent_id"].isin(parents)].reindex(columns=[inst.metric, *inst.beats])
    return float((at[inst.metric] - at[list(inst.beats)].max(axis=1, skipna=False)).mean())
