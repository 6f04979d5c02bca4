"""The "What went wrong" block of a language-model study: B's and A's perplexity and next-token accuracy right after
pruning, against the dense train_a model in the same cell and seed (an LM reads both domains through its one head:
there is no fixed head to read B through). Perplexity rises by a ratio, so its change is stated as one."""

import math

import numpy as np
import pandas as pd

from crossprune.report import damage
from crossprune.report.claims import Arm, select

TITLE = "B's and A's perplexity and next-token accuracy, right after pruning (calibrated on A)"
PPL = ((1.0, math.inf), (-math.inf, math.inf))  # a perplexity is at least 1; its change has no bound
FREE = ((-math.inf, math.inf), (-math.inf, math.inf))


def after_pruning(table: pd.DataFrame, confidence: float) -> list[str]:
    """Per place, the cell whose B perplexity rose most: B's and A's perplexity (from the dense value, and the ratio
    to it: an interval over the per-seed log ratios) and next-token accuracy."""
    rows = select(table, Arm("prune", damage.WHOLE))  # the baseline: calibrated on A (data-free criteria alike)
    parts = [cells for tag in "BA" if not (cells := side(table, rows, tag, confidence)).empty]
    if not parts:
        return []
    cells = parts[0] if len(parts) == 1 else parts[0].merge(
        parts[1][["_cell", *(c for c in parts[1] if c.startswith(prefixes("A")))]], on="_cell", how="left")
    cells = cells.merge(damage.chances(table), on="_cell", how="left")
    keys, items = damage.cell_keys(table), []
    for row, place in damage.worst(cells, "B_ratio" if "B_ratio" in cells else "A_ratio"):
        said = [s for tag in "BA" if (s := statement(row, tag))]
        n = next(row[f"{p}_n"] for p in ("B_ppl", "A_ppl") if pd.notna(row.get(f"{p}_n", math.nan)))
        items.append(f"{damage.where(row, place, keys)}: " + "; ".join(said) + f" ({damage.seeds(n)}{damage.others(place)}).")
    return items


def prefixes(tag: str) -> tuple[str, ...]:
    return f"{tag}_ppl", f"{tag}_ratio", f"{tag}_acc"


def side(table: pd.DataFrame, rows: pd.DataFrame, tag: str, confidence: float) -> pd.DataFrame:
    """One domain's columns per cell: `<tag>_ppl…` its perplexity, `<tag>_ratio…` the ratio to the dense value,
    `<tag>_acc…` its next-token accuracy (each with `_low`, `_high`; `_ref` the dense value, `_drop` dense − value)."""
    ppl = f"{tag}/ppl"
    if ppl not in table:
        return pd.DataFrame(columns=["_cell"])
    logged = table.assign(_log=np.log(table[ppl]))
    out = damage.paired(table, rows, ppl, "train_a", ppl, confidence, f"{tag}_ppl", PPL)
    log = damage.paired(logged, logged.loc[rows.index], "_log", "train_a", "_log", confidence, "log", FREE)
    if out.empty or log["log_drop"].isna().all():
        return pd.DataFrame(columns=["_cell"])
    ratio = {f"{tag}_ratio": -log["log_drop"], f"{tag}_ratio_low": -log["log_drop_high"], f"{tag}_ratio_high": -log["log_drop_low"]}
    out = out.merge(log[["_cell"]].assign(**{k: np.exp(v) for k, v in ratio.items()}), on="_cell", how="left")
    acc = damage.paired(table, rows, f"{tag}/acc", "train_a", f"{tag}/acc", confidence, f"{tag}_acc")
    return out if acc.empty else out.merge(acc[["_cell", *(c for c in acc if c.startswith(f"{tag}_acc"))]], on="_cell", how="left")


def statement(row: pd.Series, tag: str) -> str:
    """`B's perplexity rises from 9.87 (dense train_a) to 12.35 [11.90, 12.80], ×1.251 [1.205, 1.297] the dense
    value; B's next-token accuracy falls from 0.412 to 0.380 [0.370, 0.390] (change −0.032 […])`."""
    said, p, a = [], f"{tag}_ppl", f"{tag}_acc"
    if pd.notna(row.get(p, math.nan)):
        said.append(f"{tag}'s perplexity {damage.moves(row, p)} from {ppl(row[f'{p}_ref'])}{' (dense train_a)' * (tag == 'B')} "
                    f"to {ppl(row[p])}{bracket(row, p, ppl)}, ×{row[f'{tag}_ratio']:.3f}"
                    f"{bracket(row, f'{tag}_ratio', lambda x: f'{x:.3f}')} the dense value")
    if pd.notna(row.get(a, math.nan)):
        chance = row.get("chance_B", math.nan) if tag == "B" else math.nan
        said.append(f"{tag}'s next-token accuracy {damage.moves(row, a)} from {damage.num(row[f'{a}_ref'])} to "
                    f"{damage.ci(row, a)} (change {damage.change(row, f'{a}_drop')})"
                    + ("" if pd.isna(chance) else f"; always guessing B's most frequent token scores {damage.num(chance)}"))
    return "; ".join(said)


def ppl(x: float) -> str:
    return "—" if pd.isna(x) else f"{x:.2f}"


def bracket(row: pd.Series, name: str, form) -> str:
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return "" if pd.isna(low) else f" [{form(low)}, {form(high)}]"
