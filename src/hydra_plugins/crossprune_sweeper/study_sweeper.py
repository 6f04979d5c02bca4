"""`hydra/sweeper=study`: Hydra's basic sweeper over a union of grids (Hydra finds sweepers only in hydra_plugins)."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser

from crossprune.cli import progress, sweeper
from crossprune.cli.sweeper import jobs_of
from crossprune.config.errors import redact
from crossprune.store.names import VARIES_ENV, varying


@dataclass
class StudySweeperConf:
    _target_: str = "hydra_plugins.crossprune_sweeper.study_sweeper.StudySweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


log = logging.getLogger(__name__)
ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="crossprune")


class StudySweeper(BasicSweeper):
    """The basic sweeper, plus `study.grids`: a study may hold arms that are not one product of values."""

    def sweep(self, arguments: list[str]):
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = jobs_of(self.config, arguments, parser)
        # Each job learns which keys the sweep varies, so its runs are named by them (crossprune.store.names).
        points = [dict(o.split("=", 1) for o in job if "=" in o) for job in jobs]
        varies = " ".join(varying(points))
        launched = [job for job in jobs if not self.reply(job, varies)]
        if self.config.hydra.launcher.get("n_jobs", 1) != 1:  # jobs side by side (joblib)
            launched = sweeper.across_seeds(launched)
        progress.SWEEP.launched, progress.SWEEP.answered = len(launched), len(jobs) - len(launched)  # for k/N and the ETA
        progress.SWEEP.started = time.time()
        counts = f"+hydra.job.env_set.{progress.COUNTS_ENV}='{progress.SWEEP.counts()}'"  # a worker process's k/N too
        self.jobs = [[*job, f"+hydra.job.env_set.{VARIES_ENV}='{varies}'", counts] for job in launched]
        return super().sweep(arguments) if self.jobs else []

    def reply(self, job: list[str], varies: str) -> bool:
        """Record a job the preflight found answered in the store (crossprune.store.answer) here, as its app would, without
        launching it: Hydra would compose its config again (~0.4 s) only to learn the same. False if it must run."""
        if (hit := sweeper.answered.get(sweeper.job_id(job))) is None:
            return False
        from crossprune.store import answer  # noqa: PLC0415  (mlflow: only once a sweep runs)

        cfg, found = hit
        log.info(f"\t{' '.join(job)}: answered from the store")
        answer.reply(cfg, found, self.config.hydra.sweep.dir, sweeper.own_overrides(job), varies)
        return True

    def split_arguments(self, overrides, max_batch_size):  # the basic sweeper asks for its batches here
        return list(self.split_overrides_to_chunks(self.jobs, max_batch_size))

    def validate_batch_is_legal(self, batch) -> None:
        """Hydra composes every job once more to check it; `crossprune`'s preflight already composed and validated
        each one (a third composition per job, ~0.1 s each). Called first just after Hydra saved the sweep's
        multirun.yaml, which is then rewritten without the password a tracking.uri may carry."""
        saved = Path(self.config.hydra.sweep.dir) / "multirun.yaml"
        if saved.exists() and (text := saved.read_text()) != redact(text):
            saved.write_text(redact(text))
        if not sweeper.preflighted:
            super().validate_batch_is_legal(batch)
