"""Wall times of the `crossprune` command as a user meets them: help, a bad input, a run, reruns from the cache, sweeps.

Each command is a subprocess in a temporary working directory with its own store (`mlruns/mlflow.db` there); every
round makes fresh ones, and rounds interleave the commands. Torch keeps its default thread count, as a user's does.

Run: .venv/bin/python benchmarks/cli_overhead.py [--rounds 3] [--quick]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import crossprune  # noqa: F401  (as every benchmark: before anything that may import torchvision)
from rich.console import Console
from rich.table import Table

from _common import machine

BIN = Path(sys.executable).parent
SWEEP8 = ["-m", "criterion=magnitude,taylor", "prune.sparsity=0.5,0.7,0.8,0.9"]
SWEEP32 = [*SWEEP8, "seed=0,1,2,3"]  # the 8 points at 4 seeds: 4 train_a runs, everything else per point
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
QUIET = ["trainer.progress_bar=false"]
QUICK = ["train_a.epochs=1", "finetune_b.epochs=1"]  # --quick: proves the script works; not the targets' setting
RUN_IMPORTS = "import crossprune.cli.app; from crossprune import pipeline; from crossprune.cli import checks, table"  # what a run loads (cli.app)
ENV = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID",
                                                         "MLFLOW_EXPERIMENT_NAME", "HYDRA_FULL_ERROR")}


def command(argv: list[str], cwd: Path, expect: int = 0) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds one command takes, and what it printed; a command that does not exit with `expect` ends the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != expect:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        sys.exit(f"{' '.join(argv)} (in {cwd}) exited {done.returncode}, not {expect}:\n{tail}")
    return seconds, done


def crossprune(*args: str) -> list[str]:
    return [str(BIN / "crossprune"), *args]


def python(code: str, *flags: str) -> list[str]:
    return [sys.executable, *flags, "-c", code]


def one_round(root: Path, extra: list[str], times: dict, notes: dict, with32: bool) -> None:
    """Every measurement once, each store fresh."""
    def fresh() -> Path:
        return Path(tempfile.mkdtemp(dir=root))

    def record(name: str, argv: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
        seconds, done = command(argv, cwd, expect)
        times[name].append(seconds)
        return done

    here = fresh()
    record("python -c pass", python("pass"), here)
    record("import crossprune.cli.app", python("import crossprune.cli.app"), here)
    record("imports of a run", python(RUN_IMPORTS), here)
    record("help", crossprune("--help"), here)
    bad = record("bad input", crossprune("prune.sparsity=2"), here, expect=2)
    notes["bad input"] = bad.stderr.strip().splitlines()[-1]
    for name, argv, rerun in [("default", [*QUIET, *extra], True), ("sweep8", [*SWEEP8, *QUIET, *extra], True),
                              ("joblib8", [*SWEEP8, *JOBLIB, *QUIET, *extra], False),
                              *([("sweep32", [*SWEEP32, *QUIET, *extra], True)] if with32 else [])]:
        store = fresh()
        first = record(f"{name} first", crossprune(*argv), store)
        notes[f"{name} first"] = f"{first.stdout.count('(cached)')} stage(s) cached" if name == "default" else ""
        if rerun:
            again = record(f"{name} rerun", crossprune(*argv), store)
            notes[f"{name} rerun"] = f"{again.stdout.count('(cached)')} stage(s) cached" if name == "default" else ""


def import_self_times(code: str, top: int) -> list[tuple[str, float]]:
    """Seconds of import work per top-level package (each module's own time, so nothing counts twice)."""
    done = subprocess.run(python(code, "-X", "importtime"), env=ENV, capture_output=True, text=True, check=True)
    own = defaultdict(float)
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            own[name.split(".")[0]] += int(us) / 1e6
    return sorted(own.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each with fresh stores)")
    parser.add_argument("--quick", action="store_true", help=f"add {' '.join(QUICK)} to every run: proves the script works, "
                        "does not measure the targets")
    parser.add_argument("--no-32", dest="with32", action="store_false", help="skip the 32-point sweep (the longest part)")
    args = parser.parse_args()
    extra = QUICK if args.quick else []
    times, notes = defaultdict(list), {}
    with tempfile.TemporaryDirectory(prefix="cli_overhead-") as tmp:
        root = Path(tmp)
        command(crossprune("--help"), root)  # warm-up: the OS file cache, .pyc files
        for _ in range(args.rounds):
            one_round(root, extra, times, notes, args.with32)
    med = {name: statistics.median(values) for name, values in times.items()}
    ratio = lambda a, b: f"{med[a] / med[b]:.3f} of {b.split()[0]} first"  # noqa: E731

    table = Table("measurement", "command", "median s", "figure", "target", "note",
                  title=f"crossprune CLI wall times · subprocesses on fresh stores · median of {args.rounds}"
                        + (f" · --quick ({' '.join(QUICK)}): not the targets' setting" if args.quick else ""),
                  caption=machine(default_threads=True))
    seconds = lambda name: f"{med[name]:.2f}"  # noqa: E731
    table.add_row("help", "crossprune --help", seconds("help"), seconds("help") + " s", "≤ 1 s", "")
    table.add_row("bad input", "crossprune prune.sparsity=2", seconds("bad input"), seconds("bad input") + " s", "≤ 1.5 s",
                  f"exit 2: {notes['bad input']}")
    table.add_row("default run", "crossprune " + " ".join([*QUIET, *extra]), seconds("default first"),
                  seconds("default first") + " s", "≤ 6 s", notes["default first"])
    table.add_row("identical rerun", "the same, same store", seconds("default rerun"), ratio("default rerun", "default first"),
                  "≤ 0.25", notes["default rerun"])
    table.add_section()
    table.add_row("8-point sweep", "crossprune " + " ".join([*SWEEP8, *QUIET, *extra]), seconds("sweep8 first"), "", "", "")
    table.add_row("8-point rerun", "the same, same store", seconds("sweep8 rerun"), ratio("sweep8 rerun", "sweep8 first"), "≤ 0.15", "")
    table.add_row("8-point joblib", "the sweep + " + " ".join(JOBLIB), seconds("joblib8 first"),
                  ratio("joblib8 first", "sweep8 first"), "≤ 0.6", "fresh store")
    if args.with32:
        table.add_row("32-point sweep", "the 8-point sweep + seed=0,1,2,3", seconds("sweep32 first"), "", "", "")
        table.add_row("32-point rerun", "the same, same store", seconds("sweep32 rerun"), ratio("sweep32 rerun", "sweep32 first"),
                      "≤ 0.10", "")
    table.add_section()
    python_s = med["python -c pass"]
    for name, what, of in [("import crossprune.cli.app", "what --help loads", "help"), ("imports of a run", RUN_IMPORTS, "default first")]:
        net = med[name] - python_s
        table.add_row(name, what, f"{med[name]:.2f}", f"{net:.2f} s = {net / med[of]:.0%} of {of.split()[0]}", "",
                      f"less python -c pass ({python_s:.2f} s)")
    console = Console(width=200)
    console.print(table)
    heavy = Table("package", "import s (own time)", title="Imports of a run by package (python -X importtime)")
    for package, s in import_self_times(RUN_IMPORTS, top=10):
        heavy.add_row(package, f"{s:.2f}")
    console.print(heavy)


if __name__ == "__main__":
    main()
