"""What every report figure shares: axis labels, seed intervals, bands and points, reference lines, severity panels,
legends (matplotlib's object API; Agg, no window)."""

import textwrap

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crossprune.report import stats
from crossprune.report.claims import anything, reference, unlike

ACC = "accuracy (fraction correct, 0–1)"
SPARSITY = "sparsity (fraction of prunable weights removed)"
WHOLE = {"prune.scope": unlike("layers")}
ANY_SCORING = {"score.data": anything, "control.name": anything, **WHOLE}


BOUNDS = (0.0, 1.0)  # accuracies, IoU and CKA: an interval past these says only that n is small
CLIPPED = "intervals clipped to the feasible [0, 1]"
DENSE_AS = {"A/fixed_head_acc": "A/acc"}  # train_a logs no fixed-head accuracy on A: there it is A's own head


def colour(colours: dict, label: str) -> str:
    """One colour per line label across a figure's panels, so the figure's one legend names every line."""
    return colours.setdefault(label, f"C{len(colours) % 10}")


def seed_interval(values: pd.Series, confidence: float) -> tuple[float, float, float]:
    """Mean and t-interval over seeds, clipped to BOUNDS; one seed: the mean alone."""
    mean, low, high, _ = stats.t_interval(values, confidence)
    low, high = (mean, mean) if np.isnan(low) else (low, high)
    return mean, float(np.clip(low, *BOUNDS)), float(np.clip(high, *BOUNDS))


def band(ax, data: pd.DataFrame, x: str, y: str, label: str, confidence: float, colours: dict, **style) -> None:
    """Mean over seeds ± its t-interval (clipped to [0, 1]) at each x, seeds first averaged over everything else.
    Callers draw a band only where x takes two values or more (a single x is a `dots` panel)."""
    per_seed = data.dropna(subset=[y]).groupby([x, "seed"])[y].mean().reset_index()
    if per_seed.empty:
        return
    rows = [(at, *seed_interval(g[y], confidence)) for at, g in per_seed.groupby(x)]
    at, mean, low, high = map(np.asarray, zip(*rows))
    line = ax.plot(at, mean, marker="o", label=label, **({"color": colour(colours, label)} | style))[0]
    if len(at) == 1:  # a line run at one of the panel's x values: its interval as an error bar
        ax.errorbar(at, mean, yerr=[mean - low, high - mean], color=line.get_color(), capsize=4)
    else:
        ax.fill_between(at, low, high, alpha=0.2, color=line.get_color())


def dots(ax, groups: list[tuple[str, pd.DataFrame, str]], confidence: float, colours: dict, at: str) -> None:
    """One point ± its interval per (label, rows, metric) at its own tick: the form for a sweep of one value."""
    ticks = []
    for label, rows, y in groups:
        per_seed = rows.dropna(subset=[y]).groupby("seed")[y].mean()
        if per_seed.empty:
            continue
        mean, low, high = seed_interval(per_seed, confidence)
        i = len(ticks)
        ax.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=4, color=colour(colours, label))
        ticks.append(label)
    ax.set_xticks(range(len(ticks)), [t.replace(" · ", "\n") for t in ticks], fontsize="small")  # a part a line
    ax.set_xlim(-0.6, len(ticks) - 0.4)
    ax.set_xlabel(at)


def references(ax, dense: float, chance: float) -> None:
    """The dense network's value and chance as horizontal lines, where known."""
    if pd.notna(dense):
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense train_a (mean over seeds)")
    if pd.notna(chance):
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1.5, label="chance")


def severities(rows: pd.DataFrame) -> list[float]:
    """A shift pair's severities, each its own panel row (0, where B = A, is never pooled); [NaN] for other pairs."""
    if "pair.severity" not in rows or rows["pair.severity"].isna().all():
        return [np.nan]
    return sorted(rows["pair.severity"].dropna().unique())


def at_severity(rows: pd.DataFrame, severity: float) -> pd.DataFrame:
    return rows if pd.isna(severity) else rows[rows["pair.severity"] == severity]


def severity_name(severity: float) -> str:
    return "" if pd.isna(severity) else f"severity {severity:g}" + (" (B = A)" if severity == 0 else "")


def grid(n: int, title: str, width: float = 4.5, rows: int = 1) -> tuple[Figure, list[list]]:
    """rows × n panels under a title wrapped to the figure's width."""
    size = max(width * n, 7.0)
    fig = Figure(figsize=(size, 4.2 * rows), layout="constrained")
    axes = np.array(fig.subplots(rows, n, squeeze=False)).tolist()
    fig.suptitle(textwrap.fill(title, int(size * 11)), fontsize="medium")
    return fig, axes


def legend(axes: list, each: bool = False) -> None:
    """Every labelled line of the panels in one legend below the figure (off the data and the title), or one legend
    per panel."""
    if each:
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
        return
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        axes[0].figure.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize="small",
                              ncols=min(len(handles), 3))


def unit_scale(ax, whole: bool = False) -> None:
    """IoU and CKA live in [0, 1] (zoomed to the data); accuracies are shown on the whole [0, 1], chance to perfect."""
    low, high = ax.get_ylim()
    ax.set_ylim(*((-0.02, 1.02) if whole else (max(low, -0.02), min(high, 1.02))))


def scored(criterion: str, data: str) -> str:
    return f"{criterion} · " + ("data-free" if data == "none" else f"scored on {data}")


def dense(table: pd.DataFrame, rows: pd.DataFrame, metric: str) -> float:
    """`metric` of the dense train_a network in `rows`' own parents, averaged (A's fixed head on the dense network is
    A's own head: its A/acc)."""
    values = reference(table, rows, "train_a", metric)
    if values.isna().all() and metric in DENSE_AS:
        values = reference(table, rows, "train_a", DENSE_AS[metric])
    return values.mean() if values.notna().any() else np.nan
