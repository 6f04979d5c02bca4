"""Each stage run's figures in the MLflow UI, where a person looks rather than reads: training curves, per-layer
sparsity, score histograms (matplotlib's object API: no global pyplot state, no window)."""

import mlflow
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor


def log(cfg, name: str, draw, *args) -> None:
    """Draw a figure and log it as `figures/<name>.png` on the open run, unless tracking.figures=false."""
    if cfg.tracking.get("figures", True):
        mlflow.log_figure(draw(*args), f"figures/{name}.png")


AXES = (("loss", "loss"), ("acc", "accuracy (fraction correct)"), ("lr", "learning rate"))  # name part → axis


def curves(history: dict[str, list[float]], first_epoch: int = 0) -> Figure:
    """Each epoch metric against the epoch, one panel per kind: losses, accuracies, the learning rate (a rate of
    1e-3 on the accuracy axis would read as an accuracy of 0)."""
    panels = {what: [] for _, what in AXES}  # in this order, left to right
    for name in sorted(history):
        label = next((what for part, what in AXES if part in name.rpartition("/")[2]), name)
        panels.setdefault(label, []).append(name)
    panels = {what: names for what, names in panels.items() if names}
    fig = Figure(figsize=(4 * max(len(panels), 2), 3.2))  # fixed margins: a layout engine costs more than drawing it
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False,
                        gridspec_kw={"left": 0.08, "right": 0.98, "bottom": 0.15, "top": 0.9, "wspace": 0.3})[0]
    for ax, (what, names) in zip(axes, panels.items()):
        for name in names:
            values = history[name]
            ax.plot(range(first_epoch + 1, first_epoch + len(values) + 1), values, marker=".", label=name)
        ax.set(xlabel="epoch", ylabel=what)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))  # a rate of 3e-3: short labels, clear of the next panel
        ax.legend(fontsize="small")
    return fig


def layer_sparsity(sparsity: dict[str, float]) -> Figure:
    """The fraction of weights removed in each pruned parameter."""
    fig = Figure(figsize=(8, 0.4 * len(sparsity) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh(list(sparsity)[::-1], list(sparsity.values())[::-1])
    ax.set(xlim=(0, 1), xlabel="sparsity (fraction of the parameter's weights removed)")
    return fig


def score_histograms(scores: dict[str, Tensor]) -> Figure:
    """Each parameter's importance scores, log-scaled where they are all positive."""
    n, gap, bottom, top = len(scores), 0.8, 0.5, 0.3  # margins in inches, whatever the height: no layout engine
    height = 2.2 * n
    axes = (fig := Figure(figsize=(8, height))).subplots(n, 1, squeeze=False, gridspec_kw=dict(
        left=0.1, right=0.98, bottom=bottom / height, top=1 - top / height, hspace=gap * n / (height - bottom - top - gap * (n - 1))))
    for ax, (name, score) in zip(axes[:, 0], scores.items()):
        values = score.flatten().float().numpy()
        values = values[np.isfinite(values)]  # np.histogram cannot bin an inf or a NaN
        positive = bool((values > 0).all())
        ax.stairs(*np.histogram(np.log10(values) if positive else values, bins=50), fill=True)  # one artist, not 50 bars
        ax.set(title=name, xlabel="log10 score" if positive else "score", ylabel="weights")
    return fig
