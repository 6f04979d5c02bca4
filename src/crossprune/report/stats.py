"""Seeds are the independent units: paired differences within a seed, then intervals over the per-seed means."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

RESAMPLES = 2000  # bootstrap resamples of the seeds
BOOT_SEED = 0     # the same runs always give the same bootstrap interval


@dataclass(frozen=True)
class Estimate:
    """An effect with its interval over n independent units, and the per-unit numbers behind it."""

    effect: float
    low: float
    high: float
    n: int
    units: pd.DataFrame = field(default_factory=pd.DataFrame)


def t_interval(values, confidence: float) -> tuple[float, float, float, int]:
    """Mean and two-sided t-interval; NaN bounds below two values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 2:
        return (float(x.mean()) if n else np.nan), np.nan, np.nan, n
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half), n


def cell(rows: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One string per row naming its cell (NaN-safe, lists included)."""
    return rows[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", index=rows.index)


def matched(treat: pd.DataFrame, base: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """treat − base of `metric` for every pair of rows in the same cell; keys kept, `diff` added."""
    left = treat.assign(_cell=cell(treat, keys), _treat=treat[metric])[["_cell", "_treat", *keys]]
    right = base.assign(_cell=cell(base, keys), _base=base[metric])[["_cell", "_base"]]
    both = left.merge(right, on="_cell")
    return both.assign(diff=both["_treat"] - both["_base"]).dropna(subset=["diff"]).drop(columns=["_treat", "_base"])


def per_seed(diffs: pd.DataFrame, value: str = "diff") -> pd.DataFrame:
    """The mean difference of each seed and how many matched cells it averages."""
    return diffs.groupby("seed")[value].agg(effect="mean", cells="size").reset_index()


def paired(diffs: pd.DataFrame, confidence: float) -> Estimate:
    """Average the matched differences within each seed, then a t-interval over the seeds."""
    units = per_seed(diffs)
    return Estimate(*t_interval(units["effect"], confidence), units)


def interaction(rows: pd.DataFrame, keys: list[str], metric: str, layers: str = "prune.layers") -> pd.DataFrame:
    """acc(i) + acc(j) − acc(i, j) − acc_dense per cell and layer pair: > 0 when pruning both hurts more than the
    two single drops added (compounding). `rows` carry `dense`, the unpruned network's value of `metric`."""
    out = []
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
    """Spearman ρ between the mean effect per level of `by` and `against` (indexed by level), with a percentile
    bootstrap over seeds; n = number of levels."""
    levels = diffs.groupby(["seed", by])["diff"].mean().unstack(by)  # seed × level
    levels = levels[[c for c in levels.columns if c in against.index]]
    units = pd.DataFrame({by: levels.columns, "effect": levels.mean().values, "against": against[levels.columns].values,
                          "seeds": levels.notna().sum().values})
    n = len(units)
    if n < min_levels or levels.shape[0] < 2:
        return Estimate(rho(units["effect"], units["against"]) if n >= 2 else np.nan, np.nan, np.nan, n, units)
    rng = np.random.default_rng(BOOT_SEED)
    draws = [rho(levels.iloc[rng.integers(0, len(levels), len(levels))].mean(), units["against"].values)
             for _ in range(RESAMPLES)]
    low, high = np.nanpercentile(draws, [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(rho(units["effect"], units["against"]), float(low), float(high), n, units)


def rho(x, y) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return np.nan
    return float(stats.spearmanr(x[keep], y[keep]).statistic)
