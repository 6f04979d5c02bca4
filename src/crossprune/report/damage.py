"""The report's first section, "What went wrong": the largest damages the runs measured, in words, with numbers.

Every number is a mean over seeds with its n and a t-interval over the per-seed values; a comparison is paired
within a seed and a cell (the pruned network against its own dense train_a, fine-tuning against scratch in the same
cell). One statement per place (pair, severity, sparsity): its worst cell. A metric the runs lack is not mentioned.
"""

import math

import numpy as np
import pandas as pd

from crossprune.report import stats
from crossprune.report.claims import Arm, anything, select, unlike
from crossprune.report.claims_lm import language_pairs
from crossprune.report.runs import design_columns

PLACE = ("pair.name", "pair.severity", "prune.sparsity")  # one statement each
WHOLE = {"prune.scope": unlike("layers")}  # per-layer runs have their own figure
VALUE, CHANGE = (0.0, 1.0), (-1.0, 1.0)  # an accuracy or IoU; a difference of two
MOST = 8  # statements per kind of damage: the worst places; runs.csv holds every cell
PERPLEXITY = (" A perplexity's interval is clipped at 1; a perplexity ratio (pruned over dense) is the exponential of the "
              "interval of the per-seed log ratios.")  # read where a language model's statements are


def section(table: pd.DataFrame, confidence: float) -> list[tuple]:
    """The section's blocks: a heading, how to read it, then each kind of damage the runs measured, worst first."""
    from crossprune.report import damage_lm  # here: it builds on this module

    lm = table["pair.name"].isin(language_pairs(table))  # a language model has no fixed head: its perplexity instead
    kinds = [(title, items) for title, items in (
        ("B through A's fixed head, and A's own accuracy, right after pruning", fixed_head(table[~lm], confidence)),
        (damage_lm.TITLE, damage_lm.after_pruning(table[lm], confidence)),
        ("Mask agreement between scoring on A and scoring on B", masks(table, confidence)),
        ("Fine-tuning the pruned A weights on B against training B from scratch", finetuning(table, confidence)),
    ) if items]
    blocks = [("h", 2, "What went wrong")]
    if not kinds:
        return [*blocks, ("p", ("These runs hold none of the measurements this section reads (a prune stage's "
                                "fixed-head or A accuracy, mask_iou_AB, fine-tuned and scratch B accuracy)."))]
    blocks.append(("p", (f"The largest damages these runs measured, worst first, one statement per pair, severity and "
                         f"sparsity (the worst cell there). Each number is a mean over seeds with its {confidence:.0%} "
                         f"t-interval over the per-seed values [low, high] (clipped to what the quantity can be: [0, 1] for an "
                         f"accuracy or IoU, [−1, 1] for a change) and n, the number of seeds; a change or gap is paired "
                         f"within each seed and cell.") + (PERPLEXITY if lm.any() else "")))
    for title, items in kinds:
        more = len(items) - MOST
        blocks += [("h", 3, title), ("list", items[:MOST])]
        if more > 0:
            blocks.append(("p", f"… and {more} more, smaller (every cell is in runs.csv)."))
    return blocks


def paired(table: pd.DataFrame, rows: pd.DataFrame, metric: str, ref_stage: str, ref_metric: str,
           confidence: float, prefix: str, bounds: tuple = (VALUE, CHANGE)) -> pd.DataFrame:
    """Per cell: `metric` of `rows`, `ref_metric` of `ref_stage` in the same cell, and ref − value, each a mean over
    seeds with its interval (columns `<prefix>`, `<prefix>_low`, …, `<prefix>_ref`, `<prefix>_drop`, …, `<prefix>_n`),
    clipped to `bounds` (the value's, the change's)."""
    ref = table[table["stage"] == ref_stage]
    if metric not in rows or ref_metric not in ref or rows[metric].isna().all():
        return pd.DataFrame(columns=["_cell"])
    keys = cell_keys(table)
    value = per_seed(rows, metric, keys)
    both = value.merge(per_seed(ref, ref_metric, keys)[["_cell", "seed", ref_metric]].rename(columns={ref_metric: "_ref"}),
                       on=["_cell", "seed"], how="left")
    out = []
    for _, g in both.groupby("_cell"):
        mean, low, high, n = interval(g[metric], confidence, bounds[0])
        drop, drop_low, drop_high, _ = interval(g["_ref"] - g[metric], confidence, bounds[1])
        out.append({**g.iloc[0][keys].to_dict(), "_cell": g["_cell"].iloc[0], prefix: mean, f"{prefix}_low": low,
                    f"{prefix}_high": high, f"{prefix}_n": n, f"{prefix}_ref": g["_ref"].mean(),
                    f"{prefix}_drop": drop, f"{prefix}_drop_low": drop_low, f"{prefix}_drop_high": drop_high})
    return pd.DataFrame(out)


def interval(values: pd.Series, confidence: float, bounds: tuple[float, float] = VALUE) -> tuple[float, float, float, int]:
    """Mean over seeds and its t-interval, clipped to what the quantity can be (at few seeds a t-interval of an
    accuracy easily reaches past 1)."""
    mean, low, high, n = stats.t_interval(values, confidence)
    return mean, *(float(np.clip(b, *bounds)) for b in (low, high)), n


def cell_keys(table: pd.DataFrame) -> list[str]:
    """What makes a cell, less the seeds (`seed` and what follows it: `data_seed`, `pair.a.split_seed`, …), and how
    it was scored (`score_data`: none for a data-free criterion)."""
    return [c for c in design_columns(table) if not c.rpartition(".")[2].endswith("seed")] + ["score_data"]


def per_seed(rows: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """One row per cell and seed: the mean of `metric` there (a cell two parents share counts once per seed)."""
    rows = rows.dropna(subset=[metric])
    rows = rows.assign(_cell=stats.cell(rows, keys))
    means = rows.groupby(["_cell", "seed"], as_index=False)[metric].mean()
    return means.merge(rows.drop_duplicates("_cell")[["_cell", *keys]], on="_cell")


def worst(cells: pd.DataFrame, by: str, largest: bool = True) -> list[tuple[pd.Series, pd.DataFrame]]:
    """Per place, the cell where `by` is largest (or smallest), with the place's cells; worst place first."""
    cells = cells.dropna(subset=[by])
    if cells.empty:
        return []
    place = [c for c in PLACE if c in cells]
    picked = [(g.loc[g[by].idxmax() if largest else g[by].idxmin()], g)
              for _, g in cells.groupby(place, dropna=False)]
    return sorted(picked, key=lambda p: -p[0][by] if largest else p[0][by])


def where(row: pd.Series, place: pd.DataFrame, keys: list[str]) -> str:
    """`**pair, severity s, sparsity x** — criterion (how scored)`, and any other column in which the place's cells
    differ."""
    name = row["pair.name"]
    severity = row.get("pair.severity", math.nan)
    if pd.notna(severity):
        name += f", severity {severity:g}" + (" (B = A)" if severity == 0 else "")
    name += f", sparsity {row['prune.sparsity']:g}" if pd.notna(row.get("prune.sparsity", math.nan)) else ""
    what = row.get("criterion.name", "")
    if "score_data" in keys:
        what += " (data-free)" if row["score_data"] == "none" else f" scored on {row['score_data']}"
    shown = {*PLACE, "criterion.name", "score_data", "score.data"}
    text = place[[c for c in keys if c not in shown]].astype(str)
    # a criterion's own setting (criterion.data_free) goes without saying once its name is said
    criteria = place["criterion.name"].astype(str)
    varying = [c for c in text if ((criteria + "|" + text[c]).nunique() > criteria.nunique() if c.startswith("criterion.")
                                   else text[c].nunique() > 1)]
    what += "".join(f", {c} = {plain(row[c])}" for c in varying)
    return f"**{name}** — {what}"


def plain(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:g}"
    return repr(list(value)) if isinstance(value, tuple) else str(value)


def num(x: float) -> str:
    return "—" if pd.isna(x) else f"{x:.3f}"


def ci(row: pd.Series, name: str) -> str:
    """`0.281 [0.262, 0.300]`, or the mean alone where one seed gives no interval."""
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return num(row[name]) + ("" if pd.isna(low) else f" [{num(low)}, {num(high)}]")


def seeds(n) -> str:
    return f"n = {int(n)} seed{'s' if n != 1 else ''}" + (": no interval" if n < 2 else "")


def fixed_head(table: pd.DataFrame, confidence: float) -> list[str]:
    """B read through A's fixed head (prune vs the dense train_a value and chance), with A's own accuracy kept."""
    rows = select(table, Arm("prune", WHOLE))
    b = paired(table, rows, "B/fixed_head_acc", "train_a", "B/fixed_head_acc", confidence, "b")
    a = paired(table, rows, "A/acc", "train_a", "A/acc", confidence, "a")
    if b.empty and a.empty:
        return []
    cells = b.merge(a[["_cell", "a", *(c for c in a if c.startswith("a_"))]], on="_cell", how="outer") \
        if not (b.empty or a.empty) else (b if a.empty else a)
    cells = cells.merge(chances(table), on="_cell", how="left")
    items = []
    for row, place in worst(cells, "b_drop" if "b_drop" in cells else "a_drop"):
        said = []
        if "b" in row and pd.notna(row["b"]):
            said.append(f"B read through A's fixed head {moves(row, 'b')} from {num(row['b_ref'])} (dense train_a) to "
                        f"{ci(row, 'b')}, a change of {change(row, 'b_drop')}; chance on B is {num(row['chance_B'])}")
        if "a" in row and pd.notna(row["a"]):
            said.append(f"A's own accuracy {moves(row, 'a')} from {num(row['a_ref'])} to {ci(row, 'a')} "
                        f"(change {change(row, 'a_drop')})")
        n = int(row["b_n"] if "b_n" in row and pd.notna(row["b_n"]) else row["a_n"])
        items.append(f"{where(row, place, cell_keys(table))}: " + "; ".join(said) + f" ({seeds(n)}{others(place)}).")
    return items


def chances(table: pd.DataFrame) -> pd.DataFrame:
    keys = cell_keys(table)
    rows = table[table["stage"] == "prune"]
    return rows.assign(_cell=stats.cell(rows, keys)).groupby("_cell", as_index=False)["chance_B"].mean()


def others(place: pd.DataFrame) -> str:
    return "" if len(place) == 1 else f"; the worst of {len(place)} cells here"


def masks(table: pd.DataFrame, confidence: float) -> list[str]:
    """IoU of the weights kept by A- and B-scored masks (data-free criteria agree by construction: left out),
    beside its noise floor mask_iou_AA where the runs logged it."""
    rows = select(table, Arm("prune", {**WHOLE, "score.data": anything, "score_data": unlike("none")}))
    if "mask_iou_AB" not in rows or rows["mask_iou_AB"].isna().all():
        return []
    keys = [c for c in cell_keys(table) if c not in ("score.data", "score_data")]  # A- or B-scored: the same masks
    cells = summarise(rows, "mask_iou_AB", keys, confidence, "ab")
    if "mask_iou_AA" in rows and rows["mask_iou_AA"].notna().any():
        cells = cells.merge(summarise(rows, "mask_iou_AA", keys, confidence, "aa").drop(columns=keys), on="_cell", how="left")
    items = []
    for row, place in worst(cells, "ab", largest=False):
        text = (f"{where(row, place, keys)}: the masks scored on A and on B keep the same weights with "
                f"IoU {ci(row, 'ab')} ({seeds(row['ab_n'])}{others(place)})")
        if "aa" in row and pd.notna(row["aa"]):
            text += f"; two draws of A's own scoring data agree at {ci(row, 'aa')} (mask_iou_AA, the noise floor)"
        if row.get("pair.severity", math.nan) == 0:
            text += "; here B is A, so the A–B value is itself a noise floor"
        items.append(text + ".")
    return items


def summarise(rows: pd.DataFrame, metric: str, keys: list[str], confidence: float, prefix: str) -> pd.DataFrame:
    """Per cell, `metric`'s mean over seeds with its interval."""
    out = []
    for cell, g in per_seed(rows, metric, keys).groupby("_cell"):
        mean, low, high, n = interval(g[metric], confidence)
        out.append({**g.iloc[0][keys].to_dict(), "_cell": cell, prefix: mean, f"{prefix}_low": low,
                    f"{prefix}_high": high, f"{prefix}_n": n})
    return pd.DataFrame(out, columns=[*keys, "_cell", prefix, f"{prefix}_low", f"{prefix}_high", f"{prefix}_n"])


def finetuning(table: pd.DataFrame, confidence: float) -> list[str]:
    """Fine-tuned B accuracy against dense scratch in the same cell (and A's mask on a fresh init, where run)."""
    rows = select(table, Arm("finetune_b", WHOLE))
    dense = paired(table, rows, "B/acc", "scratch_b_dense", "B/acc", confidence, "d")
    if dense.empty or dense["d_ref"].isna().all():
        return []
    sparse = paired(table, rows, "B/acc", "scratch_b_sparse", "B/acc", confidence, "s")
    if not sparse.empty and sparse["s_ref"].notna().any():
        dense = dense.merge(sparse[["_cell", "s_ref", "s_drop", "s_drop_low", "s_drop_high"]], on="_cell", how="left")
    items = []
    for row, place in worst(dense, "d_drop"):
        text = (f"{where(row, place, cell_keys(table))}: fine-tuning the pruned A weights on B ends at {ci(row, 'd')}; training B from "
                f"scratch (dense) reaches {num(row['d_ref'])}: scratch minus fine-tuned {signed(row, 'd_drop')}")
        if "s_ref" in row and pd.notna(row["s_ref"]):
            text += (f"; A's mask on a fresh init reaches {num(row['s_ref'])} (mask on a fresh init minus fine-tuned "
                     f"{signed(row, 's_drop')})")
        items.append(text + f" ({seeds(row['d_n'])}{others(place)}).")
    return items


def moves(row: pd.Series, prefix: str) -> str:
    return "falls" if row[f"{prefix}_drop"] > 0 else "rises" if row[f"{prefix}_drop"] < 0 else "stays"


def change(row: pd.Series, drop: str) -> str:
    """The signed change (value − dense) with its interval, from the drop (dense − value)."""
    return signed(pd.Series({"x": -row[drop], "x_low": -row[f"{drop}_high"], "x_high": -row[f"{drop}_low"]}), "x")


def signed(row: pd.Series, name: str) -> str:
    """A signed difference with its interval: `+0.050 [+0.031, +0.069]`."""
    sign = lambda x: "—" if pd.isna(x) else f"{x:+.3f}"
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return sign(row[name]) + ("" if pd.isna(low) else f" [{sign(low)}, {sign(high)}]")
