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


def curves(history: dict[str, list[float]], first_epoch: int = 0) -> Figure:
    """Each epoch metric against the epoch: losses on one axis, accuracies on another."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    for name, values in sorted(history.items()):
        ax = loss if "loss" in name else acc
        ax.plot(range(first_epoch + 1, first_epoch + len(values) + 1), values, marker=".", label=name)
    for ax, what in ((loss, "loss"), (acc, "accuracy (fraction correct)")):
        ax.set(xlabel="epoch", ylabel=what)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
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
    fig = Figure(figsize=(8, 2.2 * len(scores)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(scores), 1))
    for ax, (name, score) in zip(axes, scores.items()):
        values = score.flatten().float().numpy()
        positive = bool((values > 0).all())
        ax.hist(np.log10(values) if positive else values, bins=50)
        ax.set(title=name, xlabel="log10 score" if positive else "score", ylabel="weights")
    return fig
