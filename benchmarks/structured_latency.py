"""What structured pruning buys on the CPU: dense ÷ pruned forward latency of the default CNN on digits, beside MACs.

The CNN is the configured one (`model=cnn`, pair digits_split's A: 8×8 images, 5 classes) with its random init:
latency does not depend on the values of the weights, only on the widths. Channels are removed as `prune.kind=
structured` removes them (`remove_channels`, magnitude scores, each layer but the head losing the fraction asked),
and both networks are timed with `latency_ms`, the function the prune stage logs `latency_ms/before|after` with.

Run: .venv/bin/python benchmarks/structured_latency.py [--sparsity 0.5 --rounds 5 --batch-size 256 --threads 1]
"""

import argparse
import copy
import statistics
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table
from torch import nn

from crossprune.criteria import magnitude
from crossprune.pruning.prunable import prunable
from crossprune.pruning.structured import count, latency_ms, remove_channels

from _common import machine

CONF = str(Path(__file__).resolve().parents[1] / "conf")
TARGET = 1.7


def widths(net: nn.Module) -> list[int]:
    return [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of each layer's channels removed")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of latency_ms (each a median of up to 30 forwards)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=cnn", f"prune.sparsity={args.sparsity}", "prune=structured"])
    a = instantiate(cfg.pair.a)
    torch.manual_seed(cfg.seed)
    dense = instantiate(cfg.model, input_shape=a.input_shape, num_classes=a.num_classes)
    pruned = copy.deepcopy(dense)
    remove_channels(pruned, magnitude.score(pruned, prunable(pruned, cfg.prune), None, None), cfg.prune.sparsity)

    times = {"dense": [], "pruned": []}
    for _ in range(args.rounds):
        for name, net in (("dense", dense), ("pruned", pruned)):
            times[name].append(latency_ms(net, args.batch_size))
    ms = {name: statistics.median(t) for name, t in times.items()}
    counts = {"dense": count(dense), "pruned": count(pruned)}

    title = (f"{a.name} {a.input_shape} · CNN, random init · {cfg.prune.sparsity:.0%} of channels removed per layer · "
             f"batch {args.batch_size} · {args.threads} thread(s) · median of {args.rounds}")
    table = Table("network", "channels", "MACs", "params", "latency ms", title=title, caption=machine())
    for name, net in (("dense", dense), ("pruned", pruned)):
        table.add_row(name, str(widths(net)), f"{counts[name]['macs']:,}", f"{counts[name]['params']:,}", f"{ms[name]:.3f}")
    table.add_section()
    table.add_row("dense ÷ pruned", "", f"{counts['dense']['macs'] / counts['pruned']['macs']:.2f}×",
                  f"{counts['dense']['params'] / counts['pruned']['params']:.2f}×",
                  f"{ms['dense'] / ms['pruned']:.2f}× (target ≥ {TARGET}×)")
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
