"""What crossprune's `fit` (Lightning + per-epoch MLflow) and its masks cost over a bare PyTorch loop, and what per-call logging costs.

Run: .venv/bin/python benchmarks/fit_overhead.py
"""

import statistics
import tempfile
import time
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
import mlflow
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, TensorDataset

from crossprune.criteria import magnitude
from crossprune.data.digits import digits
from crossprune.pruning import select
from crossprune.tracking import connect
from crossprune.training import fit

CONF = str(Path(__file__).resolve().parents[1] / "conf")
EPOCHS, REPEATS, N_METRICS = 20, 5, 200  # 5 interleaved rounds: a shared CPU is noisy


def timed(cases: dict) -> dict[str, tuple[float, object]]:
    """Median seconds of each case's `work(setup())` (setup untimed), after a warm-up; rounds interleave the cases."""
    seconds, outs = {name: [] for name in cases}, {}
    for round_ in range(REPEATS + 1):  # round 0 warms up: imports, the first Trainer, the sqlite schema
        for name, (setup, work) in cases.items():
            arg = setup()
            start = time.perf_counter()
            outs[name] = work(arg)
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return {name: (statistics.median(seconds[name]), outs[name]) for name in cases}


def accuracy(net, split, batch_size: int) -> float:
    """Accuracy on a split, in batches as Lightning validates."""
    net.eval()
    with torch.no_grad():
        hits = sum(int((net(x).argmax(1) == y).sum()) for x, y in DataLoader(TensorDataset(split.x, split.y), batch_size))
    return hits / len(split)


def bare(net, data, cfg):
    """The reference: a plain PyTorch loop with the same batches and optimizer, validating every epoch."""
    loader = DataLoader(TensorDataset(data.train.x, data.train.y), cfg.train.batch_size, shuffle=True)
    opt = instantiate(cfg.train.optimizer)(net.parameters())
    for _ in range(EPOCHS):
        net.train()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        accuracy(net, data.val, cfg.train.batch_size)
    return net


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
                "bare PyTorch loop": (new_net, lambda net: bare(net, data, cfg)),
                "crossprune fit": (new_net, train),
                f"crossprune fit + masks ({cfg.prune.sparsity:.0%})": (lambda: masked(new_net(), cfg), train),
                "per-call": (metrics, one_by_one),
                "batched": (metrics, lambda ms: mlflow.log_metrics(*ms)),
            })
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
