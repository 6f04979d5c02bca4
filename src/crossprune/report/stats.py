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
    return pd.Series([repr(t) for t in rows[keys].itertuples(index=False, name=None)], index=rows.index, dtype=object)


def matched(treat: pd.DataFrame, base: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """treat − base of `metric` for every pair of rows in the same cell; keys kept, `diff` added."""
    if metric not in treat or metric not in base:
        return pd.DataFrame(columns=[*keys, "diff"])
    # A cell two parents share (e.g. one prune run read by two grids of a study) is one measurement, not two.
    left = treat.assign(_cell=cell(treat, keys), _treat=treat[metric])[["_cell", "_treat", *keys]].drop_duplicates("_cell")
    right = base.assign(_cell=cell(base, keys), _base=base[metric]).groupby("_cell", as_index=False)["_base"].mean()
    both = left.merge(right, on="_cell")
    return both.assign(diff=both["_treat"] - both["_base"]).dropna(subset=["diff"]).drop(columns=["_treat", "_base"])


def over_seeds(diffs: pd.DataFrame, confidence: float) -> dict[str, Estimate]:
    """Per pair: average the differences within each seed, then a t-interval over the per-seed means."""
    seeds = diffs.groupby(["pair.name", "seed"])["diff"].agg(effect="mean", cells="size").reset_index()
    return {pair: Estimate(*t_interval(g["effect"].to_numpy(), confidence), g[["seed", "effect", "cells"]])
            for pair, g in seeds.groupby("pair.name")}


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
    effect, low, high, n = t_interval(per_seed.to_numpy(dtype=float), confidence)
    return Estimate(effect, max(low, -1.0), min(high, 1.0), n, units)  # ρ lives in [-1, 1]; so does its interval


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
