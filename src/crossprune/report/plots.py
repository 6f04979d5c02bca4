"""The report's figures (matplotlib, Agg): one function per plot, each skipped when its runs are absent."""

import textwrap
from collections.abc import Callable
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from crossprune.report import stats
from crossprune.report.claims import Arm, Judged, reference, select, unlike
from crossprune.report.runs import design_columns
from crossprune.report.drawing import ACC, ANY_SCORING, at_severity, band, CLIPPED, colour, dense, dots, grid, legend, references, scored, severities, severity_name, SPARSITY, unit_scale, WHOLE


def sparsity(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """Accuracy and fixed-head accuracy right after pruning, on A and on B, per criterion, score data and control,
    beside the dense network and chance; one row of panels per severity; one sparsity: a point per line."""
    out = {}
    for pair, rows in select(table, Arm("prune", ANY_SCORING)).groupby("pair.name"):
        panels = [m for m in ("A/acc", "A/fixed_head_acc", "B/acc", "B/fixed_head_acc") if rows.get(m, pd.Series()).notna().any()]
        if not panels:
            continue
        levels, swept = severities(rows), sorted(rows["prune.sparsity"].unique())
        fig, axes = grid(len(panels), f"{pair}: after pruning, before fine-tuning (mean ± {confidence:.0%} CI over seeds, "
                         f"{CLIPPED}; dashed: the dense train_a network, dotted: chance)",
                         width=4.5 if len(swept) > 1 else 3.5, rows=len(levels))  # points need less room than curves
        colours = {}
        for row_axes, severity in zip(axes, levels):
            at = at_severity(rows, severity)
            lines = [(scored(criterion, data) + ("" if control == "none" else f" · {control}"), g, control) for
                     (criterion, data, control), g in at.groupby(["criterion.name", "score_data", "control.name"])]
            for ax, metric in zip(row_axes, panels):
                if len(swept) > 1:
                    for label, g, control in lines:
                        band(ax, g, "prune.sparsity", metric, label, confidence, colours,
                             linestyle="-" if control == "none" else "--")
                    ax.set_xlabel(SPARSITY)
                else:
                    dots(ax, [(label, g, metric) for label, g, _ in lines], confidence, colours,
                         f"at sparsity {swept[0]:g}, the only one run")
                references(ax, dense(table, at, metric), at[f"chance_{metric[0]}"].mean())
                ax.set(title=", ".join(filter(None, (metric, severity_name(severity)))), ylabel=ACC)
                unit_scale(ax, whole=True)
        legend([ax for row in axes for ax in row])
        out[f"sparsity_{pair}"] = fig
    return out


def capacity_vs_mmd(judged: Judged, confidence: float) -> dict[str, Figure]:
    """The capacity effect (B-scored minus A-scored fixed-head B accuracy) against A–B dissimilarity, one point per
    severity (severity 0, where B = A and the effect is 0 by construction, hollow); pairs with one severity: none."""
    units = judged.units[judged.units["claim"] == "capacity_shift"]
    units = units.groupby("pair").filter(lambda g: g["pair.severity"].nunique() > 1) if not units.empty else units
    if units.empty:
        return {}
    fig, [[ax]] = grid(1, "", width=6)
    titles, colours = [], {}
    for pair, g in units.groupby("pair"):
        g = g.groupby("pair.severity", as_index=False)[["against", "effect"]].mean()  # over seeds
        line = ax.plot(g["against"], g["effect"], marker="o", label=pair, color=colour(colours, pair))[0]
        zero = g[g["pair.severity"] == 0]
        ax.plot(zero["against"], zero["effect"], marker="o", linestyle="none", markersize=10, markerfacecolor="white",
                color=line.get_color(), label="severity 0 (B = A)" if not zero.empty else None)
        for _, u in g.iterrows():
            ax.annotate(severity_name(u["pair.severity"]), (u["against"], u["effect"]), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")
        verdicts = judged.verdicts[(judged.verdicts["claim"] == "capacity_shift") & (judged.verdicts["pair"] == pair)]
        titles += [f"{pair}: Spearman ρ = {r.effect:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in verdicts.head(1).itertuples()]
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
    """B validation accuracy over epochs: fine-tuning the pruned A weights against both scratch baselines (the
    dense one in black), beside chance; a panel per sparsity (and severity); one epoch: no curve to draw."""
    out = {}
    rows = pd.concat([select(table, Arm(s, WHOLE)) for s in ("finetune_b", "scratch_b_dense", "scratch_b_sparse")])
    rows = rows.dropna(subset=["run_id"])
    if rows.empty:
        return out
    histories = {run: fetch(run) for run in rows["run_id"].unique()}
    for pair, p in rows.groupby("pair.name"):
        long = pd.DataFrame([{**r, "epoch": step, "val/acc": v} for r in p.to_dict("records") for step, v in histories[r["run_id"]]])
        if long.empty or long["epoch"].nunique() < 2:
            continue
        levels, sparsities = severities(long), sorted(long["prune.sparsity"].unique())
        fig, axes = grid(len(sparsities), f"{pair}: B validation accuracy while training on B (mean ± {confidence:.0%} CI "
                         f"over seeds, {CLIPPED}; dotted: chance)", rows=len(levels))
        colours = {"scratch_b_dense (dense, from scratch)": "black"}
        for row_axes, severity in zip(axes, levels):
            for ax, s in zip(row_axes, sparsities):
                at = at_severity(long, severity)
                at = at[at["prune.sparsity"] == s]
                band(ax, at[at["stage"] == "scratch_b_dense"], "epoch", "val/acc", "scratch_b_dense (dense, from scratch)",
                     confidence, colours)
                for (stage, criterion), g in at[at["stage"] != "scratch_b_dense"].groupby(["stage", "criterion.name"]):
                    band(ax, g, "epoch", "val/acc", f"{stage} · {criterion}", confidence, colours,
                         linestyle="-" if stage == "finetune_b" else ":")
                references(ax, np.nan, at["chance_B"].mean())
                ax.set(title=", ".join(filter(None, (f"sparsity {s:g}", severity_name(severity)))), xlabel="epoch",
                       ylabel=f"B val/acc, {ACC}")
                unit_scale(ax, whole=True)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend([ax for row in axes for ax in row])
        out[f"curves_{pair}"] = fig
    return out


def mask_iou(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """How far masks scored on A and on B agree (IoU of kept weights), per criterion and severity (0, where B = A,
    its own line), beside the noise floor mask_iou_AA (two draws of A's scoring data) where logged. Data-free
    criteria agree by construction: left out."""
    rows = select(table, Arm("prune", {**WHOLE, "score_data": unlike("none")}))
    rows = rows[rows["mask_iou_AB"].notna()] if "mask_iou_AB" in rows else rows.iloc[:0]
    if rows.empty:
        return {}
    pairs = sorted(rows["pair.name"].unique())
    floor = "mask_iou_AA" in rows and rows["mask_iou_AA"].notna().any()
    fig, axes = grid(len(pairs), f"Mask agreement, A-scored vs B-scored (mean ± {confidence:.0%} CI over seeds, {CLIPPED}"
                     + ("; dashed, hollow: A vs A, two draws of A's scoring data, the noise floor)" if floor else ")"))
    colours = {}
    for ax, (pair, p) in zip(axes[0], rows.groupby("pair.name")):
        swept = sorted(p["prune.sparsity"].unique())
        p = p if "pair.severity" in p else p.assign(**{"pair.severity": np.nan})
        lines = [(" · ".join(filter(None, (criterion, severity_name(severity)))), g)
                 for (criterion, severity), g in p.groupby(["criterion.name", "pair.severity"], dropna=False)]
        if len(swept) > 1:
            for label, g in lines:
                band(ax, g, "prune.sparsity", "mask_iou_AB", label, confidence, colours)
                if floor:
                    band(ax, g, "prune.sparsity", "mask_iou_AA", f"{label} · A vs A", confidence, colours,
                         color=colour(colours, label), linestyle="--", markerfacecolor="white")
            ax.set_xlabel(SPARSITY)
        else:
            groups = [(label, g, "mask_iou_AB") for label, g in lines]
            groups += [(f"{label} · A vs A", g, "mask_iou_AA") for label, g in lines] if floor else []
            dots(ax, groups, confidence, colours, f"at sparsity {swept[0]:g}, the only one run")
        ax.set(title=pair, ylabel="IoU of kept weights (0–1)")
        unit_scale(ax)
    legend(axes[0], each=True)
    return {"mask_iou": fig}


def cka(table: pd.DataFrame, confidence: float) -> dict[str, Figure]:
    """Linear CKA to the dense train_a network, layer by layer, after pruning and after fine-tuning on B; a row of
    panels per severity; a side with one layer: no curve to draw."""
    out = {}
    rows = pd.concat([select(table, Arm(s, WHOLE)) for s in ("prune", "finetune_b")])
    for pair, p in rows.groupby("pair.name"):
        sides = {side: sorted(c for c in p if c.startswith(f"{side}/cka/") and p[c].notna().any()) for side in "AB"}
        sides = {side: columns for side, columns in sides.items() if len(columns) > 1}
        if not sides:
            continue
        levels = severities(p)
        fig, axes = grid(len(sides), f"{pair}: linear CKA vs dense train_a (mean over criteria; ± {confidence:.0%} CI over "
                         f"seeds, {CLIPPED})", rows=len(levels))
        colours = {}
        for row_axes, severity in zip(axes, levels):
            for ax, (side, columns) in zip(row_axes, sides.items()):
                long = at_severity(p, severity).melt(id_vars=["stage", "prune.sparsity", "seed"], value_vars=columns,
                                                     var_name="layer", value_name="cka")
                long["depth"] = long["layer"].map({c: i for i, c in enumerate(columns)})
                for (stage, s), g in long.groupby(["stage", "prune.sparsity"]):
                    band(ax, g, "depth", "cka", f"{stage} · sparsity {s:g}", confidence, colours,
                         linestyle="-" if stage == "prune" else "--")
                ax.set(title=", ".join(filter(None, (f"on {side}", severity_name(severity)))), xticks=range(len(columns)),
                       xticklabels=[c.split("/cka/")[1] for c in columns], xlabel="layer", ylabel="linear CKA (0–1)")
                unit_scale(ax)
        legend([ax for row in axes for ax in row])
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
