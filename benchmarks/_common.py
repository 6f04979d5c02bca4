"""What the benchmarks share: interleaved median timing and the line that says which machine measured."""

import datetime
import os
import platform
import statistics
import time
from importlib.metadata import version

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch


def timed(cases: dict, repeats: int, warmup: bool = True) -> dict[str, tuple[float, object]]:
    """Median seconds of each case's `work(setup())` (setup untimed); rounds interleave the cases, so a busy spell
    of a shared CPU falls on all of them alike. With `warmup`, a first untimed round pays imports and first calls."""
    seconds, outs = {name: [] for name in cases}, {}
    for round_ in range(repeats + warmup):
        for name, (setup, work) in cases.items():
            arg = setup()
            start = time.perf_counter()
            outs[name] = work(arg)
            if round_ >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: (statistics.median(seconds[name]), outs[name]) for name in cases}


def machine(default_threads: bool = False) -> str:
    """CPUs (and how busy they were), torch's version and threads, Python, and the date: what a figure depends on.
    `default_threads`: the timed work ran in subprocesses on torch's default thread count, not this process's."""
    import torch  # noqa: PLC0415  only once the benchmark has imported what it needs, in its order

    cpus, usable = os.cpu_count(), len(os.sched_getaffinity(0))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    threads = f"{torch.get_num_threads()} threads (torch's default)" if default_threads else f"{torch.get_num_threads()} thread(s)"
    return (f"{cpus} CPUs ({usable} usable, load average {load}) · torch {version('torch')} on {threads} · "
            f"Python {platform.python_version()} · {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
