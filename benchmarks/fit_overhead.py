"""What crossprune's `fit` (Lightning + per-epoch MLflow) and its masks cost over a bare PyTorch loop, and what per-call logging costs.

Run: .venv/bin/python benchmarks/fit_overhead.py
"""

import tempfile
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
import mlflow
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from crossprune.criteria import magnitude
from crossprune.data.digits import digits
from crossprune.pruning import select
from crossprune.store.connect import connect
from crossprune.stages.training import fit

from _bare import accuracy, bare
from _common import timed

CONF = str(Path(__file__).resolve().parents[1] / "conf")
EPOCHS, REPEATS, N_METRICS = 20, 5, 200  # 5 interleaved rounds after a warm-up (imports, the first Trainer, the store): a shared CPU is noisy


def masked(net, cfg):
    """`net` with a global magnitude mask at the configured sparsity attached through prune hooks."""
    weights = {n: p for n, p in net.named_parameters() if n.endswith("weight") and not n.startswith("head")}
    return select(magnitude.score(net, weights, None, None), cfg.prune.sparsity).apply(net)


def one_by_one(ms) -> None:
    """Log each metric of `(metrics, step)` with its own MLflow call, as per-step logging would."""
    metrics, step = ms
    for k, v in metrics.items():
        mlflow.log_metric(k, v, step=step)


def main() -> None:
    torch.set_num_threads(1)  # two intra-op threads on a busy CPU swing timings 5-30×; one thread keeps them steady
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["trainer.progress_bar=false"])
        no_figure = compose("config", overrides=["trainer.progress_bar=false", "tracking.figures=false"])
    data = digits()

    def new_net():
        pl.seed_everything(cfg.seed, verbose=False)  # same init (and shuffling) for every variant
        return instantiate(cfg.model, input_shape=data.input_shape, num_classes=data.num_classes)

    train = lambda net: fit(net, data.train, data.val, EPOCHS, cfg)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        store = OmegaConf.create({"uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "fit_overhead", "artifacts": f"{tmp}/artifacts"})
        connect(store)
        with mlflow.start_run():
            steps = iter(range(10**6))  # a fresh step per call, so no two timings write the same rows
            metrics = lambda: ({f"m/{i}": float(i) for i in range(N_METRICS)}, next(steps))  # noqa: E731
            rows = timed({
                "bare PyTorch loop": (new_net, lambda net: bare(net, data.train, data.val, EPOCHS, cfg)),
                "crossprune fit": (new_net, train),
                "crossprune fit, no curves figure": (new_net, lambda net: fit(net, data.train, data.val, EPOCHS, no_figure)),
                f"crossprune fit + masks ({cfg.prune.sparsity:.0%})": (lambda: masked(new_net(), cfg), train),
                "per-call": (metrics, one_by_one),
                "batched": (metrics, lambda ms: mlflow.log_metrics(*ms)),
            }, REPEATS)
    per_call, batched = rows.pop("per-call"), rows.pop("batched")
    table = Table("measurement", "median s", "ratio", "val acc", title=f"digits · MLP {list(cfg.model.hidden)} · {EPOCHS} epochs · 1 thread · median of {REPEATS}")
    reference = rows["bare PyTorch loop"][0]
    for name, (seconds, net) in rows.items():
        table.add_row(name, f"{seconds:.3f}", f"{seconds / reference:.2f}× bare", f"{accuracy(net, data.val, cfg.train.batch_size):.3f}")
    table.add_section()
    table.add_row(f"{N_METRICS} × mlflow.log_metric", f"{per_call[0]:.3f}", f"{per_call[0] / batched[0]:.1f}× batched", "")
    table.add_row(f"1 × mlflow.log_metrics({N_METRICS})", f"{batched[0]:.3f}", "1.0× batched", "")
    Console(width=110).print(table)


if __name__ == "__main__":
    main()
