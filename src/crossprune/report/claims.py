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


anything: Callable = lambda v: True  # noqa: E731  an arm's value that any run matches


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


SCRATCH_E, SCRATCH_B = {"scratch_b.budget": "E"}, {"scratch_b.budget": "B"}


def mitigation(name: str, what: str, change: dict, vary: tuple[str, ...], only: dict | None = None) -> Claim:
    """A change to the plain pipeline, against the plain pipeline trained on B as long (the `budget_B` column, the
    epochs on B behind the final network, teacher_b's included, is matched: a mitigation that trains on B twice
    meets a baseline fine-tuned twice as long)."""
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
    Claim("init", "Fine-tuning the pruned A weights on B ends worse than training B from scratch (dense, Scratch-E: "
          "as many epochs on B as finetune_b)", "B/acc", Arm("scratch_b_dense", SCRATCH_E), Arm("finetune_b", SCRATCH_E),
          SCRATCH_ABOVE_CHANCE, ("budget_B",)),
    Claim("init_scratch_B", "Fine-tuning the pruned A weights on B ends worse than training B from scratch (dense, "
          "Scratch-B: as many optimizer steps as train_a and finetune_b together; Liu et al. 2019)", "B/acc",
          Arm("scratch_b_dense", SCRATCH_B), Arm("finetune_b", SCRATCH_B), SCRATCH_ABOVE_CHANCE, ("budget_B",)),
    Claim("init_sparse", "Fine-tuning the pruned A weights on B ends worse than A's mask on a fresh init trained on B",
          "B/acc", Arm("scratch_b_sparse", SCRATCH_E), Arm("finetune_b", SCRATCH_E), SCRATCH_ABOVE_CHANCE, ("budget_B",)),
    Claim("init_random_mask", "Fine-tuning the pruned A weights on B ends worse than a random mask of the same density "
          "on a fresh init", "B/acc", Arm("scratch_b_sparse", {"control.name": "random_same_density", **SCRATCH_E}),
          Arm("finetune_b", SCRATCH_E), SCRATCH_ABOVE_CHANCE, ("control.", "budget_B")),
    Claim("sanity", "After training, magnitude masks beat their within-layer shuffles on A (Frankle et al. 2021)",
          "A/acc", Arm("prune", {"criterion.name": "magnitude"}),
          Arm("prune", {"criterion.name": "magnitude", "control.name": "shuffle_within_layer"}), A_ABOVE_CHANCE, ("control.",)),
    Claim("sanity_random", "After training, magnitude masks beat random pruning of the same sparsity on A", "A/acc",
          Arm("prune", {"criterion.name": "magnitude"}), Arm("prune", {"criterion.name": "random"}), A_ABOVE_CHANCE,
          ("criterion.",)),
    mitigation("score_B", "Scoring on B", {"score.data": "B"}, ("score.data",), DEPENDENT),
    mitigation("mix", "Scoring on a mix of A and B", {"score.data": "mix"}, ("score.data",), DEPENDENT),
    mitigation("finetune_then_prune", "Fine-tuning on B before pruning (then scored on any data)",
               {"order": "finetune_then_prune", "score.data": anything}, ("order", "score.data", "finetune_b.epochs")),
    mitigation("distill", "Distilling from the dense A network fine-tuned on B", {"finetune_b.distill.alpha": positive},
               ("finetune_b.distill.", "finetune_b.epochs")),
)

RULE = ("instrument fails → not measurable (never refuted); n below the claim's minimum → inconclusive; else, with "
        "p-values Holm–Bonferroni-adjusted across every row of the report that reaches a test: adjusted one-sided "
        "p(effect ≤ 0) < α and effect ≥ min effect → supported; adjusted one-sided p(effect ≥ min effect) < α (an "
        "effect of interest is excluded — reversed or negligible) → refuted; otherwise inconclusive, with the seeds "
        "that would decide it at the observed spread. α = (1 − confidence) / 2, so one row alone is judged by its "
        "two-sided interval; seeds are the units (a t-test over per-seed effects; n equal units: the exact sign test)")


def verdict(row: dict, alpha: float, rows: int) -> tuple[str, str]:
    """THE verdict rule for one row (its adjusted p-values already in `row`): the outcome and why."""
    r, passed = row, f"; instrument ok: {row['instrument']} = {row['margin']:.3g} > {row['floor']:g}"
    if not r["margin"] > r["floor"]:
        return "not measurable", (f"instrument fails: {r['instrument']} = {r['margin']:.3g}, not > min effect "
                                  f"{r['floor']:g} → not measurable")
    if r["n"] < r["min_n"] or np.isnan(r["p_holm"]):
        return "inconclusive", f"n = {r['n']} < {r['min_n']}: n too small for a test → inconclusive{passed}"
    holm = f"Holm over {rows} rows"
    if r["p_holm"] < alpha and r["effect"] >= r["min_effect"]:
        return "supported", (f"adjusted p(effect ≤ 0) = {r['p_holm']:.2g} < {alpha:g} ({holm}) and effect "
                             f"{r['effect']:.3g} ≥ min effect {r['min_effect']:g} → supported{passed}")
    if r["p_refute_holm"] < alpha:
        return "refuted", (f"adjusted p(effect ≥ {r['min_effect']:g}) = {r['p_refute_holm']:.2g} < {alpha:g} ({holm}): "
                           f"an effect of interest is excluded → refuted{passed}")
    need = f"; ≈ {r['seeds_needed']:.0f} seeds would decide it at the observed spread (80% power)" \
        if r["seeds_needed"] == r["seeds_needed"] else ""
    if r["se"] == 0:  # n identical units (a Spearman ρ over 3 severities takes 4 values): no t, the sign test
        need = (f"; all n = {r['n']} units equal {r['effect']:.3g}: zero spread, and the exact sign test on {r['n']} "
                f"equal units gives p = {0.5 ** r['n']:.3g}")
    return "inconclusive", (f"adjusted p(effect ≤ 0) = {r['p_holm']:.2g}, p(effect ≥ {r['min_effect']:g}) = "
                            f"{r['p_refute_holm']:.2g} ({holm}): neither below {alpha:g} → inconclusive{need}{passed}")


@dataclass(frozen=True)
class Judged:
    verdicts: pd.DataFrame  # one row per claim, pair and cell (all, or one sparsity / pruning kind / severity)
    units: pd.DataFrame     # the per-seed (or per-severity) effects behind each row


SPLITS = ("prune.kind", "prune.sparsity", "pair.severity")  # a row per value where a claim's cells differ in one
COLUMNS = ["claim", "pair", "cell", "statement", "effect", "ci_low", "ci_high", "n", "verdict", "rule", "p", "p_holm",
           "p_refute", "p_refute_holm", "boot_low", "boot_high", "poi", "poi_low", "poi_high", "seeds_needed", "min_effect", "note"]


def judge(table: pd.DataFrame, min_effect: float, confidence: float) -> Judged:
    """Every claim on every pair whose runs have both arms in at least one common cell: a pooled row, and a row per
    sparsity, pruning kind or severity where the claim's cells take more than one; one Holm family for them all."""
    table = with_budget(table)
    design, rows_out, units_out = design_columns(table), [], {}
    for claim in every_claim():
        treat, base = select(table, claim.treat), select(table, claim.base)
        if treat.empty or base.empty:
            continue
        diffs = claim.differences(claim, treat, base, [c for c in design if not c.startswith(claim.vary)], table)
        margins = instrument_margins(table, base["parent_id"], claim.instrument)
        need = claim.min_effect if claim.min_effect is not None else min_effect
        for label, part in (cell for _, on_pair in diffs.groupby("pair.name") for cell in cells(on_pair, claim)):
            for pair, est in sorted(claim.summary(claim, part, table, confidence).items()):
                rows_out.append(dict(
                    claim=claim.name, pair=pair, cell=label, statement=claim.statement, effect=est.effect,
                    ci_low=est.low, ci_high=est.high, n=est.n, p=est.p_above(0), p_refute=est.p_below(need), se=est.se,
                    min_effect=need, min_n=claim.min_n, margin=margins.get(pair, np.nan), floor=min_effect,
                    instrument=str(claim.instrument), **stats.rliable(est.cells, confidence),
                    note=stats.resolution(claim.metric, claim.summary is over_seeds, est.cells,
                                         pd.concat([treat, base]).query("`pair.name` == @pair"), need)))
                units_out[(claim.name, pair, label)] = est.units
    verdicts = decide(pd.DataFrame(rows_out), confidence)
    units = pd.concat(units_out, names=["claim", "pair", "cell", None]).reset_index(level=[0, 1, 2]).reset_index(drop=True) \
        if units_out else pd.DataFrame(columns=["claim", "pair", "cell"])
    return Judged(verdicts, units)


def every_claim() -> tuple[Claim, ...]:
    """CLAIMS, then the language models' (report/claims_lm.py builds on this module, so it is read once it exists)."""
    from crossprune.report.claims_lm import LM_CLAIMS  # noqa: PLC0415

    return (*CLAIMS, *LM_CLAIMS)


def cells(diffs: pd.DataFrame, claim: Claim):
    """One pair's cells: ("all", every difference but severity 0's, where B is A and an effect is 0 by construction,
    unless that is all), then ("<column>=<value>", its part) per SPLITS column with several values (not the one the
    summary runs across) that holds other differences than a cell before it: Holm counts each test once."""
    distinct = diffs["pair.severity"].fillna(1) != 0 if "pair.severity" in diffs and claim.summary is over_seeds else None
    pooled = diffs[distinct] if distinct is not None and distinct.any() else diffs
    yield "all", pooled
    seen = [set(pooled.index)]
    for column in SPLITS:
        if column in diffs and column not in claim.vary and not (claim.summary is across_severities and column == "pair.severity"):
            values = diffs[column].dropna().unique()
            for value in sorted(values) if len(values) > 1 else []:
                if (part := diffs[diffs[column] == value]).empty or set(part.index) in seen:
                    continue
                seen.append(set(part.index))
                yield f"{column}={value:g}" if isinstance(value, float) else f"{column}={value}", part


def decide(rows: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Holm-adjust the p-values of the rows that reach a test, then the verdict and the seeds that would decide."""
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    alpha = (1 - confidence) / 2
    tested = (rows["margin"] > rows["floor"]) & (rows["n"] >= rows["min_n"])
    rows["p_holm"] = np.nan
    rows["p_refute_holm"] = np.nan
    rows.loc[tested, "p_holm"] = stats.holm(rows.loc[tested, "p"].to_numpy())
    rows.loc[tested, "p_refute_holm"] = stats.holm(rows.loc[tested, "p_refute"].to_numpy())
    m = max(int(tested.sum()), 1)
    distance = np.where(rows["effect"] >= rows["min_effect"], rows["effect"], rows["min_effect"] - rows["effect"])
    rows["seeds_needed"] = [stats.seeds_needed(se, n, d, alpha / m) for se, n, d in zip(rows["se"], rows["n"], distance)]
    judged = [verdict(r, alpha, m) for r in rows.to_dict("records")]
    rows["verdict"], rows["rule"] = [v for v, _ in judged], [why for _, why in judged]
    rows.loc[rows["verdict"] != "inconclusive", "seeds_needed"] = np.nan
    return rows.reindex(columns=COLUMNS)


def with_budget(table: pd.DataFrame) -> pd.DataFrame:
    """`budget_B`: the epochs on B behind a finetune_b network (teacher_b's included: finetune_then_prune and
    distillation train on B twice), the column that budget-matched arms share."""
    if "finetune_b.epochs" not in table:
        return table
    twice = (table["order"] == "finetune_then_prune") | (table.get("finetune_b.distill.alpha", 0) > 0)
    budget = table["finetune_b.epochs"] * np.where(twice, 2, 1)
    return table.assign(budget_B=np.where(table["stage"] == "finetune_b", budget, np.nan))


DEFAULTS = {"scratch_b.budget": "E"}  # what runs made before a key existed ran with


def select(rows: pd.DataFrame, arm: Arm) -> pd.DataFrame:
    """The rows of `arm`; a column the runs lack selects nothing."""
    keep = rows["stage"].to_numpy() == arm.stage
    for column, want in (BASELINE | arm.where).items():
        if column not in rows:
            absent = DEFAULTS.get(column, np.nan)
            if want(absent) if callable(want) else want == absent:
                continue
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
