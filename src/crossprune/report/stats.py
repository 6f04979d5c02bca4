"""Seeds are the independent units: paired differences within a seed, then intervals over the per-seed means."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """An effect with its interval over n independent units, and the per-unit numbers behind it."""

    effect: float
    low: float
    high: float
    n: int
    units: pd.DataFrame = field(default_factory=pd.DataFrame)
    se: float = np.nan  # standard error of `effect` (the t-interval's), for the tests and the sample size
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # task × seed differences, for rliable's aggregates

    def p_above(self, bound: float) -> float:
        """One-sided p of H0 effect ≤ bound (t over the n units); n equal units: the exact sign test, 0.5^n."""
        return one_sided(self.effect - bound, self.se, self.n)

    def p_below(self, bound: float) -> float:
        """One-sided p of H0 effect ≥ bound."""
        return one_sided(bound - self.effect, self.se, self.n)


def one_sided(distance: float, se: float, n: int) -> float:
    if n < 2 or np.isnan(distance):
        return np.nan
    if se == 0:
        return 0.5 ** n if distance > 0 else 1.0
    return float(stats.t.sf(distance / se, n - 1))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (NaN stays NaN and is not counted): the family-wise error across the
    report's rows is at most the level each adjusted p is compared with."""
    p = np.asarray(p, dtype=float)
    out, known = np.full_like(p, np.nan), np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def seeds_needed(se: float, n: int, distance: float, alpha: float, power: float = 0.8) -> float:
    """Units (seeds) a one-sided test at `alpha` needs to detect `distance` with `power`, at the observed spread."""
    sd = se * np.sqrt(n)
    if not (n >= 2 and distance > 0 and sd > 0):
        return np.nan
    return float(np.ceil(((stats.norm.isf(alpha) + stats.norm.isf(1 - power)) * sd / distance) ** 2))


def rliable(units: pd.DataFrame, confidence: float, reps: int = 2000) -> dict[str, float]:
    """rliable's aggregates (Agarwal et al. 2021) over the cells (tasks) × seeds (runs) behind a row: a stratified
    bootstrap interval of the mean effect (seeds resampled within each cell), and the probability of improvement
    P(treat > base), the Mann–Whitney statistic per cell averaged over cells, with its stratified interval. A fixed
    bootstrap seed: the same runs always give the same numbers."""
    out = dict.fromkeys(("boot_low", "boot_high", "poi", "poi_low", "poi_high"), np.nan)
    if units.empty or "diff" not in units:
        return out
    rng = np.random.default_rng(0)
    cells = [g for _, g in units.groupby("_task", sort=True)] if "_task" in units else [units]
    tail = (1 - confidence) / 2
    means = np.zeros(reps)
    for g in cells:  # mean over cells of the mean over each cell's seeds, resampled within the cell
        d = g["diff"].to_numpy(dtype=float)
        means += d[rng.integers(0, len(d), (reps, len(d)))].mean(axis=1) / len(cells)
    out["boot_low"], out["boot_high"] = (float(q) for q in np.quantile(means, [tail, 1 - tail]))
    if {"treat", "base"} <= set(units):
        pois = np.zeros(reps)
        point = 0.0
        for g in cells:
            x, y = g["treat"].to_numpy(dtype=float), g["base"].to_numpy(dtype=float)
            point += improvement(x, y) / len(cells)
            xs, ys = x[rng.integers(0, len(x), (reps, len(x)))], y[rng.integers(0, len(y), (reps, len(y)))]
            pois += np.array([improvement(a, b) for a, b in zip(xs, ys)]) / len(cells)
        out["poi"] = point
        out["poi_low"], out["poi_high"] = (float(q) for q in np.quantile(pois, [tail, 1 - tail]))
    return out


def improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) over every pair of runs (rliable's probability of improvement on one task)."""
    return float(((x[:, None] > y[None]) + 0.5 * (x[:, None] == y[None])).mean())


def t_interval(values, confidence: float) -> tuple[float, float, float, int]:
    """Mean, two-sided t-interval and n; NaN bounds below two values."""
    return t_estimate(values, confidence)[:4]


def t_estimate(values, confidence: float) -> tuple[float, float, float, int, float]:
    """Mean, two-sided t-interval, n and the standard error; NaN bounds below two values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 2:
        return (float(x.mean()) if n else np.nan), np.nan, np.nan, n, np.nan
    se = x.std(ddof=1) / np.sqrt(n)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * se
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half), n, float(se)


def cell(rows: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One string per row naming its cell (NaN-safe, lists included)."""
    return pd.Series([repr(t) for t in rows[keys].itertuples(index=False, name=None)], index=rows.index, dtype=object)


def matched(treat: pd.DataFrame, base: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """treat − base of `metric` for every pair of rows in the same cell; keys kept, `diff` added."""
    if metric not in treat or metric not in base:
        return pd.DataFrame(columns=[*keys, "diff"])
    # A cell two parents share (e.g. one prune run read by two grids of a study) is one measurement, not two.
    left = treat.assign(_cell=cell(treat, keys), _treat=treat[metric])[["_cell", "_treat", *keys]].drop_duplicates("_cell")
    right = base.assign(_cell=cell(base, keys), _base=base[metric]).groupby("_cell", as_index=False)["_base"].mean()
    both = left.merge(right, on="_cell")
    both = both.assign(diff=both["_treat"] - both["_base"]).dropna(subset=["diff"])
    return both.rename(columns={"_treat": "treat", "_base": "base"})


def over_seeds(diffs: pd.DataFrame, confidence: float) -> dict[str, Estimate]:
    """Per pair: average the differences within each seed, then a t-interval over the per-seed means. The units
    keep each task × seed difference (`cells`) for the stratified bootstrap."""
    out = {}
    for pair, rows in diffs.groupby("pair.name"):
        seeds = rows.groupby("seed")["diff"].agg(effect="mean", cells="size").reset_index()
        mean, low, high, n, se = t_estimate(seeds["effect"].to_numpy(), confidence)
        task = cell(rows, [c for c in rows.columns if c not in ("_cell", "seed", "treat", "base", "diff")])
        out[pair] = Estimate(mean, low, high, n, seeds[["seed", "effect", "cells"]], se,
                             rows.assign(_task=task).reindex(columns=["_task", "seed", "treat", "base", "diff"]))
    return out


def interaction(rows: pd.DataFrame, keys: list[str], metric: str, layers: str = "prune.layers") -> pd.DataFrame:
    """acc(i) + acc(j) − acc(i, j) − acc_dense per cell and layer pair: > 0 when pruning both hurts more than the
    two single drops added (compounding). `rows` carry `dense`, the unpruned network's value of `metric`."""
    out = []
    if metric not in rows:
        return pd.DataFrame(columns=[*keys, "i", "j", "drop_i", "drop_j", "drop_ij", "diff"])
    for _, group in rows.assign(_cell=cell(rows, keys)).groupby("_cell"):
        acc = dict(zip(group[layers], group[metric]))
        dense = group["dense"].mean()
        for both, value in acc.items():
            if len(both) == 2 and all((one,) in acc for one in both):
                single = [acc[(one,)] for one in both]
                out.append({**group.iloc[0][keys].to_dict(), "i": both[0], "j": both[1],
                            "drop_i": dense - single[0], "drop_j": dense - single[1], "drop_ij": dense - value,
                            "diff": sum(single) - value - dense})
    return pd.DataFrame(out, columns=[*keys, "i", "j", "drop_i", "drop_j", "drop_ij", "diff"])


def rank_correlation(diffs: pd.DataFrame, by: str, against: pd.Series, confidence: float, min_levels: int) -> Estimate:
    """Per seed, Spearman ρ between the mean effect at each level of `by` and `against` (indexed by seed and level),
    then a t-interval over the seeds' ρ; a seed with fewer than `min_levels` levels gives none. The units are one
    row per seed and level (`effect` there, `against`, and the seed's `rho`)."""
    levels = diffs.groupby(["seed", by])["diff"].mean().rename("effect").reset_index()
    levels["against"] = against.reindex(pd.MultiIndex.from_frame(levels[["seed", by]])).to_numpy()
    levels = levels.dropna(subset=["against"])
    per_seed = levels.groupby("seed").apply(
        lambda g: rho(g["effect"], g["against"]) if len(g) >= min_levels else np.nan, include_groups=False)
    units = levels.assign(rho=levels["seed"].map(per_seed))
    effect, low, high, n, se = t_estimate(per_seed.to_numpy(dtype=float), confidence)
    return Estimate(effect, max(low, -1.0), min(high, 1.0), n, units, se)  # ρ lives in [-1, 1]; so does its interval


def rows_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman ρ of every row of x with y (ties share their mean rank); NaN for a constant row."""
    rx, ry = stats.rankdata(x, axis=1), stats.rankdata(y)
    rx[np.isnan(x).any(axis=1)] = np.nan
    rx, ry = rx - rx.mean(axis=1, keepdims=True), ry - ry.mean()
    with np.errstate(all="ignore"):
        return (rx @ ry) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum())


def rho(x, y) -> float:
    """Spearman rank correlation; NaN when either side is constant or fewer than two values are known."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return float(rows_rho(x[keep][None], y[keep])[0]) if keep.sum() >= 2 else np.nan


def resolution(metric: str, over_seeds: bool, cells: pd.DataFrame, arms: pd.DataFrame, need: float) -> str:
    """A note where one accuracy's binomial SE √(p(1 − p)/n) exceeds the min effect: no one run resolves the effect
    (p: the mean of the row's cells, else of the pair's arms; n: their `<side>/n_test`)."""
    side, p = metric.partition("/")[0], cells.reindex(columns=["treat", "base"]).mean().mean()
    if metric.endswith("acc") and over_seeds and f"{side}/n_test" in arms:
        n, p = arms[f"{side}/n_test"].min(), arms[metric].mean() if pd.isna(p) else p
        if (se := np.sqrt(p * (1 - p) / n)) > need:
            return (f"one {side} accuracy on {n:.0f} test samples has SE {se:.3f} > min effect {need:g}: the paired "
                    "seeds carry the verdict")
    return ""
