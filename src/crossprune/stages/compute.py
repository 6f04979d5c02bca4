"""Where and how the stages compute outside training: on the Trainer's device, in batches, on capped samples."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from crossprune.data import Split


def device_of(trainer: DictConfig) -> torch.device:
    """The device Lightning trains on for `trainer.accelerator`/`devices` (its first one)."""
    kind = trainer.accelerator
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if kind == "gpu":
        kind = "cuda" if torch.cuda.is_available() else "mps"
    if kind != "cuda":
        return torch.device(kind)
    ids = trainer.devices
    if isinstance(ids, str) and "," in ids:  # "1,3": ids; "2" or 2: a count, starting at 0
        return torch.device("cuda", int(ids.split(",")[0]))
    return torch.device("cuda", ids[0] if not isinstance(ids, int | str) else 0)


def pin_threads(threads: int | None) -> None:
    """Run torch and the BLAS under numpy/scikit-learn on `threads` intra-op threads (compute.threads; None: leave
    the libraries' defaults): a float sum split over a machine-dependent number of threads changes its last bits,
    and noise of that size moved verdicts."""
    if threads is not None:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 (scikit-learn's own dependency)

        torch.set_num_threads(threads)
        threadpool_limits(threads)


def machine() -> dict[str, str]:
    """What a result's last bits depend on besides the config: torch's threads and the CPU's instruction set (it
    picks the kernels); tagged on every run."""
    return {"torch_threads": str(torch.get_num_threads()), "cpu": torch.backends.cpu.get_cpu_capability()}


def share_cores(parallel_jobs: int | None) -> None:
    """With compute.threads=null, give this process's torch its share of the CPU cores when a launcher runs
    `parallel_jobs` at once (joblib's n_jobs; -1: one per core): each torch would otherwise start a thread per
    core, and two workers on two cores ran slower than one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = cores if parallel_jobs is not None and parallel_jobs < 0 else parallel_jobs or 1
    if jobs > 1:
        torch.set_num_threads(max(1, cores // jobs))


@dataclass(frozen=True)
class Compute:
    device: torch.device
    batch_size: int  # eval.batch_size: rows per inference batch
    max_samples: int | None  # eval.max_samples: rows a probe is fitted on and CKA compares; None = all

    @classmethod
    def of(cls, cfg: DictConfig) -> "Compute":
        return cls(device_of(cfg.trainer), cfg.eval.batch_size, cfg.eval.max_samples)

    @contextmanager
    def on(self, *nets: nn.Module) -> Iterator[None]:
        """`nets` in eval mode on the device for the block, then back on the CPU in the mode they were in."""
        modes = [n.training for n in nets]
        for n in nets:
            n.to(self.device).eval()
        try:
            yield
        finally:
            for n, mode in zip(nets, modes):
                n.cpu().train(mode)

    def run(self, fn: Callable[[Tensor], Tensor], x: Tensor | Split, rows: Tensor | None = None) -> Tensor:
        """`fn` over the rows of a tensor, or of a split (all, or `rows` in that order), in batches on the device,
        under inference mode; float32 on the CPU. A split is read batch by batch: a streamed one is never whole."""
        if isinstance(x, Tensor):
            batches = (x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size))
        else:
            batches = (batch for batch, _ in x.batches(self.batch_size, rows))
        with torch.inference_mode():
            return torch.cat([fn(batch.to(self.device)).float().cpu() for batch in batches])

    def rows(self, n: int) -> Tensor:
        """At most `max_samples` of `n` row indices, in order: the same seeded subset every call (all rows if they fit)."""
        if self.max_samples is None or n <= self.max_samples:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(0))[: self.max_samples].sort().values
