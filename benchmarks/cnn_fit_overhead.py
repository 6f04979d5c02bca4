"""What crossprune's `fit` (Lightning + per-epoch MLflow) costs over a bare PyTorch loop, on a CNN and 28×28 images.

Run: .venv/bin/python benchmarks/cnn_fit_overhead.py [--epochs 3 --rounds 3 --train 4000 --val 1000]
"""

import argparse
import math
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

from crossprune.data import Split
from crossprune.store.connect import connect
from crossprune.stages.training import fit

from _bare import accuracy, bare
from _common import machine, timed

CONF = str(Path(__file__).resolve().parents[1] / "conf")
CLASSES, SIDE, TARGET = 10, 28, 1.1


def gratings(n: int, seed: int) -> Split:
    """`n` noisy 28×28 one-channel gratings: the class sets the orientation (5 angles) and the frequency (2), the
    phase is random, so a conv net must find the pattern anywhere; Gaussian noise of the grating's amplitude on top."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=g)
    angle = (y % 5).float() * math.pi / 5
    cycles = torch.where(y < 5, 3.0, 6.0)  # across the image
    phase = torch.rand(n, generator=g) * 2 * math.pi
    r = torch.arange(SIDE).float() / SIDE
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    along = cols * torch.cos(angle)[:, None, None] + rows * torch.sin(angle)[:, None, None]
    x = torch.sin(2 * math.pi * cycles[:, None, None] * along + phase[:, None, None])
    x = x + torch.randn(n, SIDE, SIDE, generator=g)
    return Split(x[:, None], y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds, after one warm-up round")
    parser.add_argument("--train", type=int, default=4000, help="training images")
    parser.add_argument("--val", type=int, default=1000, help="validation images")
    parser.add_argument("--channels", default="32,64", help="model.channels")
    args = parser.parse_args()
    torch.set_num_threads(1)  # two intra-op threads on a busy CPU swing timings 5-30×; one thread keeps them steady
    channels = [int(c) for c in args.channels.split(",")]
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=cnn", f"model.channels=[{args.channels}]", "trainer.progress_bar=false"])
        no_figure = compose("config", overrides=["model=cnn", f"model.channels=[{args.channels}]", "trainer.progress_bar=false",
                                                 "tracking.figures=false"])
    train, val = gratings(args.train, seed=0), gratings(args.val, seed=1)

    def new_net():
        pl.seed_everything(cfg.seed, verbose=False)  # same init (and shuffling) for both
        return instantiate(cfg.model, input_shape=[1, SIDE, SIDE], num_classes=CLASSES)

    with tempfile.TemporaryDirectory() as tmp:
        connect(OmegaConf.create({"uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "cnn_fit_overhead", "artifacts": f"{tmp}/artifacts"}))
        with mlflow.start_run():
            rows = timed({
                "bare PyTorch loop": (new_net, lambda net: bare(net, train, val, args.epochs, cfg)),
                "crossprune fit": (new_net, lambda net: fit(net, train, val, args.epochs, cfg)),
                "crossprune fit, no curves figure": (new_net, lambda net: fit(net, train, val, args.epochs, no_figure)),
            }, args.rounds)
    reference = rows["bare PyTorch loop"][0]
    title = (f"synthetic gratings 28×28 ({args.train} train / {args.val} val, {CLASSES} classes) · CNN {channels} · "
             f"{args.epochs} epochs · batch {cfg.train.batch_size} · 1 thread · median of {args.rounds}")
    table = Table("measurement", "median s", "ratio", "target", "val acc", title=title, caption=machine())
    for name, (seconds, net) in rows.items():
        ratio = seconds / reference
        target = "reference" if name.startswith("bare") else f"≤ {TARGET}× bare"
        table.add_row(name, f"{seconds:.3f}", f"{ratio:.2f}× bare", target, f"{accuracy(net, val, cfg.train.batch_size):.3f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
