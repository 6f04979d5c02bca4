"""What a sweep prints as it goes: one line per job with k/N, a bar and an ETA, naming the values the sweep varies,
in place of Hydra's job line (which carries the sweeper's internal `+hydra.job.env_set…`)."""

import logging
import os
import re
import time
from dataclasses import dataclass, field

from omegaconf import DictConfig
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from crossprune.store.names import VARIES_ENV

COUNTS_ENV = "CROSSPRUNE_SWEEP_COUNTS"  # `launched answered started` for a launcher's worker processes (joblib)
INTERNAL = re.compile(rf"\s*\+hydra\.job\.env_set\.({VARIES_ENV}|{COUNTS_ENV})=('[^']*'|\S*)")
LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher", "hydra_plugins.hydra_joblib_launcher._core",
             "hydra_plugins.hydra_submitit_launcher.submitit_launcher")


@dataclass
class Sweep:
    """What the study sweeper knows of the sweep it launches (in this process: the basic launcher's jobs)."""

    launched: int | None = None  # jobs it launches; None: not a study sweep, or another process
    answered: int = 0  # points the store answered without launching them
    started: float | None = None  # when its first job started (time.time(): workers read it from COUNTS_ENV)
    seen: set = field(default_factory=set)

    def counts(self) -> str:
        """What a worker process needs to print k/N and an ETA, for COUNTS_ENV."""
        return f"{self.launched} {self.answered} {self.started or time.time()}"

    def read(self) -> None:
        """In a launcher's worker process: the counts the sweeper's process passed in COUNTS_ENV."""
        if self.launched is None and (counts := os.environ.get(COUNTS_ENV)):
            launched, answered, started = counts.split()
            self.launched, self.answered, self.started = int(launched), int(answered), float(started)


SWEEP = Sweep()


def quiet_job_lines() -> None:
    """Hydra's launchers' job lines: the basic launcher's give way to `job_started`'s; the others' lose the internal
    override."""
    for name in LAUNCHERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, JobLines) for f in logger.filters):
            logger.addFilter(JobLines(replaced=name in LAUNCHERS[:2]))


class JobLines(logging.Filter):
    def __init__(self, replaced: bool):
        super().__init__()
        self.replaced = replaced

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if re.match(r"\s*#\d+ : ", text) and self.replaced and SWEEP.launched:
            return False  # job_started prints it, with k/N (joblib's, all at once before any runs, as each starts)
        record.msg, record.args = INTERNAL.sub("", text), ()
        return True


def job_started(config: DictConfig) -> None:
    """`point k/N ━━━━━╺━━ 0:41 elapsed · ETA 1:22 · prune.sparsity=0.95 criterion=magnitude`, on stderr."""
    SWEEP.read()
    if not SWEEP.launched:
        return
    num = int(config.hydra.job.num)
    now = time.time()
    SWEEP.started = SWEEP.started or now
    total, done = SWEEP.launched + SWEEP.answered, num + SWEEP.answered
    elapsed = now - SWEEP.started
    eta = f"ETA {clock(elapsed / num * (SWEEP.launched - num))}" if num else "ETA –"
    shown = varied(list(config.hydra.overrides.task), os.environ.get(VARIES_ENV))
    line = Table.grid(padding=(0, 1))
    line.add_row(Text(f"point {done + 1}/{total}", style="bold"), ProgressBar(total=total, completed=done, width=16),
                 Text(f"{clock(elapsed)} elapsed · {eta}", style="cyan"), Text(shown))
    terminal = Console(stderr=True)
    (terminal if terminal.is_terminal else Console(stderr=True, width=max(terminal.width, 160))).print(line)  # a log: one line


def varied(overrides: list[str], varies: str | None) -> str:
    """The job's values of the keys its sweep varies; without that list, its own overrides but the bookkeeping."""
    own = [o for o in overrides if not o.lstrip("+~").startswith(("hydra", "tracking.", "paths.", "trainer.progress_bar"))]
    keys = (varies or "").split()
    return " ".join(o for o in own if not keys or o.lstrip("+~").split("=", 1)[0] in keys) or " ".join(own)


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def drop_empty_job_folder(config: DictConfig) -> None:
    """Hydra makes a folder per job, which nothing here writes to (no logs, no .hydra): leave none behind."""
    folder = config.hydra.runtime.get("output_dir")
    if folder and os.path.isdir(folder) and os.path.abspath(folder) != os.getcwd() and not os.listdir(folder):
        os.rmdir(folder)
