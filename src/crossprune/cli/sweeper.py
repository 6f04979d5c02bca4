"""Studies as sweeps: the jobs of a union of grids, a line as each job starts, and the one table printed when a
sweep ends."""

import time
from itertools import zip_longest

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import crossprune.config.schema  # noqa: F401  the config's types in the ConfigStore: Hydra imports this module (through the

# study sweeper plugin) before it composes anything, so every composition finds them, the tests' and scripts' too


preflighted = False  # set by `crossprune`'s preflight once it has composed and validated every job of the sweep
answered: dict[frozenset[str], tuple] = {}  # the preflight's jobs the store answers: job_id -> (config, found run)


def own_overrides(overrides: list[str]) -> list[str]:
    """A job's own overrides, without the Hydra settings that came with them (the preflight sees `hydra/launcher=…`,
    the sweeper does not): what a job's `hydra.overrides.task` holds."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra")]


def job_id(overrides: list[str]) -> frozenset[str]:
    return frozenset(own_overrides(overrides))


def study_jobs(params: dict, grids: dict, arguments: list[str], parser: OverridesParser | None = None) -> list[list[str]]:
    """Every job's overrides: each grid of `study.grids` crossed with hydra.sweeper.params, the command line winning
    over both (so it changes or narrows a study); one grid of the params alone when there are no grids."""
    parser = parser or OverridesParser.create()
    jobs, seen = [], set()
    for grid in list(grids.values()) or [{}]:
        values = {**params, **grid}
        parsed = parser.parse_overrides([f"{k}={v}" for k, v in values.items()] + list(arguments))
        for job in BasicSweeper.split_arguments(parsed, None)[0]:
            if frozenset(job) not in seen:  # grids may share points: each runs once
                seen.add(frozenset(job))
                jobs.append(job)
    return jobs


def across_seeds(jobs: list[list[str]]) -> list[list[str]]:
    """`jobs` taken in turn from each seed (seed 0's first, seed 1's first, …, seed 0's second, …): a parallel
    launcher's workers then start on different seeds, which share no stage, instead of one waiting on the train_a
    the other is training."""
    by_seed: dict[str | None, list[list[str]]] = {}
    for job in jobs:
        by_seed.setdefault(next((o for o in job if o.startswith("seed=")), None), []).append(job)
    return [job for turn in zip_longest(*by_seed.values()) for job in turn if job is not None]


def jobs_of(config: DictConfig, arguments: list[str], parser: OverridesParser | None = None) -> list[list[str]]:
    """The jobs of a composed config (with its Hydra node): its hydra.sweeper.params and study.grids, then `arguments`."""
    plain = lambda node: OmegaConf.to_container(node) if node else {}  # noqa: E731
    return study_jobs(plain(config.hydra.sweeper.params), plain(config.study.get("grids")), arguments, parser)


class SweepTable(Callback):
    """What a multirun prints: a line with k/N and an ETA as each job starts (crossprune.cli.progress), and at the
    end one table of its points (the values that vary as columns) instead of one per job."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from crossprune.cli import progress  # noqa: PLC0415

        self.started_ms = int(time.time() * 1000)
        progress.quiet_job_lines()

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        from crossprune.cli import progress  # noqa: PLC0415

        if config.hydra.mode == RunMode.MULTIRUN:
            progress.job_started(config)

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        from crossprune.cli import progress  # noqa: PLC0415

        if config.hydra.mode == RunMode.MULTIRUN:
            progress.drop_empty_job_folder(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from crossprune.cli.table import print_sweep  # mlflow and rich only once a sweep has run

        print_sweep(config, config.hydra.sweep.dir, self.started_ms)
