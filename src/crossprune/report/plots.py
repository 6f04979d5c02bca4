"""The report's figures (matplotlib, Agg): one function per plot, each skipped when its runs are absent."""

import textwrap
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from crossprune.report import stats
from crossprune.report.claims import Arm, Judged, anything, reference, select, unlike
from crossprune.report.runs import design_columns

ACC = "accuracy (fraction correct, 0–1)"
SPARSITY = "sparsity (fraction of prunable weights removed)"
WHOLE = {"prune.scope": unlike("layers")}
ANY_SCORING = {"score.data": anything, "control.name": anything, **WHOLE}


def band(ax, data: pd.DataFrame, x: str, y: str, label: str, confidence: float, **style) -> None:
    """Mean over seeds ± its t-interval at each x (seeds first averaged over everything else)."""
    per_seed = data.dropna(subset=[y]).groupby([x, "seed"])[y].mean().reset_index()
    if per_seed.empty:
        return
    rows = [(at, *stats.t_interval(g[y], confidence)[:3]) for at, g in per_seed.groupby(x)]
    at, mean, low, high = map(np.asarray, zip(*rows))
    low, high = np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high)  # one seed: no interval
    line = ax.plot(at, mean, marker="o", label=label, **style)[0]
    if len(at) == 1:  # a band needs two x values: show the interval as an error bar
        ax.errorbar(at, mean, yerr=[mean - low, high - mean], color=line.get_color(), capsize=4)
    else:
        ax.fill_between(at, low, high, alpha=0.2, color=line.get_color())


def grid(n: int, title: str, width: float = 4.5) -> tuple[Figure, list]:
    """A row of n panels under a title wrapped to the figure's width."""
    size = max(width * n, 7.0)
    fig = Figure(figsize=(size, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n)).tolist()
    fig.suptitle(textwrap.fill(title, int(size * 11)), fontsize="medium")
    return fig, axes


def legend(axes: list, each: bool = False) -> None:
    """The panels' shared lines in one legend beside the figure (off the data), or one legend per panel."""
    labelled = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if each:
        for ax in labelled:
            ax.legend(fontsize="small")
    elif labelled:
        labelled[0].figure.legend(*labelled[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")


def unit_scale(ax) -> None:
    """Accuracies, IoU and CKA live in [0, 1]: an interval past that says only that n is small."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -0.02), min(high, 1.02))


def scored(criterion: str, data: str) -> str:
    return f"{criterion} · " + ("data-free" if data == "none" else f"scored on {data}")


def sparsity(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """Accuracy and fixed-head accuracy right after pruning, on A and on B, per criterion, score data and control."""
    out = {}
    for pair, rows in select(table, Arm("prune", ANY_SCORING)).groupby("pair.name"):
        panels = [m for m in ("A/acc", "A/fixed_head_acc", "B/acc", "B/fixed_head_acc") if rows.get(m, pd.Series()).notna().any()]
        if not panels:
            continue
        fig, axes = grid(len(panels), f"{pair}: after pruning, before fine-tuning (mean ± {confidence:.0%} CI over seeds)")
        for ax, metric in zip(axes, panels):
            lines = rows if "pair.severity" in rows else rows.assign(**{"pair.severity": np.nan})  # a pair may have none
            for (criterion, data, control, severity), g in lines.groupby(
                    ["criterion.name", "score_data", "control.name", "pair.severity"], dropna=False):
                label = scored(criterion, data) + ("" if control == "none" else f" · {control}")
                label += "" if pd.isna(severity) else f" · severity {severity:g}"
                band(ax, g, "prune.sparsity", metric, label, confidence, linestyle="-" if control == "none" else "--")
            ax.set(title=metric, xlabel=SPARSITY, ylabel=ACC)
            unit_scale(ax)
        legend(axes)
        out[f"sparsity_{pair}"] = fig
    return out


def capacity_vs_mmd(judged: Judged, confidence: float) -> dict[str, Figure]:
    """The capacity effect (B-scored minus A-scored fixed-head B accuracy) against A–B dissimilarity."""
    units = judged.units[judged.units["claim"] == "capacity_shift"]
    if units.empty:
        return {}
    fig, [ax] = grid(1, "", width=6)
    titles = []
    for pair, g in units.groupby("pair"):
        g = g.groupby("pair.severity", as_index=False)[["against", "effect"]].mean()  # over seeds
        g = g.rename(columns={"against": "dissimilarity/mmd"})
        ax.plot(g["dissimilarity/mmd"], g["effect"], marker="o", label=pair)
        for _, u in g.iterrows():
            ax.annotate(f"severity {u['pair.severity']:g}", (u["dissimilarity/mmd"], u["effect"]), fontsize="x-small")
        row = judged.verdicts[(judged.verdicts["claim"] == "capacity_shift") & (judged.verdicts["pair"] == pair)].iloc[0]
        titles.append(f"{pair}: Spearman ρ = {row.effect:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="train_a dissimilarity/mmd (MMD² of dense features, RBF kernel)",
           ylabel="capacity effect: B/fixed_head_acc, B-scored − A-scored")
    ax.set_title("\n".join(titles) + f"\n(ρ per seed; {confidence:.0%} t-interval over seeds; points: seed means)", fontsize="medium")
    ax.legend(fontsize="small")
    return {"capacity_vs_mmd": fig}


def layers(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """Layer sensitivity: drop from dense per layer pruned alone (diagonal) and pair interaction (off-diagonal)."""
    out = {}
    rows = select(table, Arm("prune", {"prune.scope": "layers"}))
    keys = [c for c in design_columns(table) if c != "prune.layers"]
    for pair, p in rows.groupby("pair.name"):
        sparsities = sorted(p["prune.sparsity"].unique())
        fig = Figure(figsize=(10, 4.2 * len(sparsities)), layout="constrained")
        fig.suptitle(textwrap.fill(f"{pair}: diagonal = accuracy drop from dense with that layer pruned alone; off-diagonal "
                                   "= interaction drop(i,j) − drop(i) − drop(j) (> 0: the layers compound). Means over seeds.",
                                   110), fontsize="medium")
        axes = np.atleast_2d(fig.subplots(len(sparsities), 2))
        for row_axes, s in zip(axes, sparsities):
            for ax, metric in zip(row_axes, ("A/acc", "B/fixed_head_acc")):
                heat(ax, table, p[p["prune.sparsity"] == s], keys, metric, f"{metric}, sparsity {s:g}")
        out[f"layers_{pair}"] = fig
    return out


def heat(ax, table: pd.DataFrame, rows: pd.DataFrame, keys: list[str], metric: str, title: str) -> None:
    """One layer × layer panel of `metric`: single-layer drops on the diagonal, pair interactions off it."""
    if rows.get(metric, pd.Series()).isna().all():
        ax.set_axis_off()
        ax.set_title(f"{title}: not logged")
        return
    rows = rows.assign(dense=reference(table, rows, "train_a", metric))
    names = sorted({n for layers in rows["prune.layers"] for n in layers})
    matrix = np.full((len(names), len(names)), np.nan)
    single = rows[rows["prune.layers"].map(len) == 1]
    for name, g in single.assign(layer=single["prune.layers"].str[0]).groupby("layer"):
        matrix[names.index(name), names.index(name)] = (g["dense"] - g[metric]).mean()
    for (i, j), g in stats.interaction(rows, keys, metric).groupby(["i", "j"]):
        matrix[names.index(i), names.index(j)] = matrix[names.index(j), names.index(i)] = g["diff"].mean()
    image = ax.imshow(matrix, cmap="coolwarm", vmin=-np.nanmax(np.abs(matrix), initial=0.01), vmax=np.nanmax(np.abs(matrix), initial=0.01))
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names, title=title,
           xlabel="layer j", ylabel="layer i")
    for (a, b), v in np.ndenumerate(matrix):
        if not np.isnan(v):
            ax.text(b, a, f"{v:.3f}", ha="center", va="center", fontsize="small")
    ax.figure.colorbar(image, ax=ax, label="accuracy difference (0–1 scale)")


def curves(table: pd.DataFrame, fetch: Callable, confidence: float) -> dict[str, Figure]:
    """B validation accuracy over epochs: fine-tuning the pruned A weights against both scratch baselines."""
    out = {}
    rows = pd.concat([select(table, Arm(s, WHOLE)) for s in ("finetune_b", "scratch_b_dense", "scratch_b_sparse")])
    rows = rows.dropna(subset=["run_id"])
    if rows.empty:
        return out
    histories = {run: fetch(run) for run in rows["run_id"].unique()}
    for pair, p in rows.groupby("pair.name"):
        long = pd.DataFrame([{**r, "epoch": step, "val/acc": v} for r in p.to_dict("records") for step, v in histories[r["run_id"]]])
        if long.empty:
            continue
        sparsities = sorted(long["prune.sparsity"].unique())
        fig, axes = grid(len(sparsities), f"{pair}: B validation accuracy while training on B (mean ± {confidence:.0%} CI over seeds)")
        for ax, s in zip(axes, sparsities):
            at = long[long["prune.sparsity"] == s]
            band(ax, at[at["stage"] == "scratch_b_dense"], "epoch", "val/acc", "scratch_b_dense", confidence, color="black")
            for (stage, criterion), g in at[at["stage"] != "scratch_b_dense"].groupby(["stage", "criterion.name"]):
                band(ax, g, "epoch", "val/acc", f"{stage} · {criterion}", confidence, linestyle="-" if stage == "finetune_b" else ":")
            ax.set(title=f"sparsity {s:g}", xlabel="epoch", ylabel=f"B val/acc, {ACC}")
            unit_scale(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend(axes)
        out[f"curves_{pair}"] = fig
    return out


def mask_iou(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """How far masks scored on A and on B agree (IoU of kept weights), per criterion."""
    rows = select(table, Arm("prune", WHOLE))
    rows = rows[rows["mask_iou_AB"].notna()] if "mask_iou_AB" in rows else rows.iloc[:0]
    if rows.empty:
        return {}
    pairs = sorted(rows["pair.name"].unique())
    fig, axes = grid(len(pairs), f"Mask agreement, A-scored vs B-scored (mean ± {confidence:.0%} CI over seeds)")
    for ax, (pair, p) in zip(axes, rows.groupby("pair.name")):
        for criterion, g in p.groupby("criterion.name"):
            band(ax, g, "prune.sparsity", "mask_iou_AB", criterion, confidence)
        ax.set(title=pair, xlabel=SPARSITY, ylabel="IoU of kept weights (0–1)")
        unit_scale(ax)
    legend(axes, each=True)
    return {"mask_iou": fig}


def cka(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """Linear CKA to the dense train_a network, layer by layer, after pruning and after fine-tuning on B."""
    out = {}
    rows = pd.concat([select(table, Arm(s, WHOLE)) for s in ("prune", "finetune_b")])
    for pair, p in rows.groupby("pair.name"):
        sides = {side: sorted(c for c in p if c.startswith(f"{side}/cka/") and p[c].notna().any()) for side in "AB"}
        if not any(sides.values()):
            continue
        fig, axes = grid(2, f"{pair}: linear CKA vs dense train_a (mean over criteria; ± {confidence:.0%} CI over seeds)")
        for ax, (side, columns) in zip(axes, sides.items()):
            long = p.melt(id_vars=["stage", "prune.sparsity", "seed"], value_vars=columns, var_name="layer", value_name="cka")
            long["depth"] = long["layer"].map({c: i for i, c in enumerate(columns)})
            for (stage, s), g in long.groupby(["stage", "prune.sparsity"]):
                band(ax, g, "depth", "cka", f"{stage} · sparsity {s:g}", confidence, linestyle="-" if stage == "prune" else "--")
            ax.set(title=f"on {side}", xticks=range(len(columns)), xticklabels=[c.split("/cka/")[1] for c in columns],
                   xlabel="layer", ylabel="linear CKA (0–1)")
            unit_scale(ax)
        legend(axes)
        out[f"cka_{pair}"] = fig
    return out


def draw(table: pd.DataFrame, judged: Judged, fetch: Callable, confidence: float) -> dict[str, Figure]:
    """Every figure the runs allow, by file stem."""
    return {**sparsity(table, confidence), **capacity_vs_mmd(judged, confidence), **layers(table, confidence),
            **curves(table, fetch, confidence), **mask_iou(table, confidence), **cka(table, confidence)}


FIGURES_OF = {  # which figures a claim's section shows (by file-stem prefix)
    "capacity": ("sparsity", "mask_iou", "cka"), "capacity_shift": ("capacity_vs_mmd",), "hierarchy": ("layers",),
    "init": ("curves",), "init_sparse": ("curves",), "init_random_mask": ("curves",), "sanity": ("sparsity",),
    "sanity_random": ("sparsity",),
    "mitigation": ("curves",),  # every mitigation:<name>
}
