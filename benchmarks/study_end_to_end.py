"""What `make run` costs: the seed_claims study and its report, end to end, on an empty store.

Both commands run as subprocesses in a temporary working directory, the store and the report inside it; torch keeps
its default thread count, as `make run` does. About five minutes on two cores: `--dry` prints the commands only.
`--rerun` runs the study command a second time on the finished store (target: rerun ÷ first ≤ 0.10); overrides after
the options narrow the study, e.g. `seed=0` (one seed of its points: the figure of a shorter study, not `make run`'s).

Run: .venv/bin/python benchmarks/study_end_to_end.py [--dry] [--rerun] [override ...]
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import crossprune  # noqa: F401  (as every benchmark: before anything that may import torchvision)
from rich.console import Console
from rich.table import Table

from _common import machine

BIN = Path(sys.executable).parent
TARGET_S = 300
RERUN_TARGET = 0.10
ENV = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID",
                                                         "MLFLOW_EXPERIMENT_NAME", "HYDRA_FULL_ERROR")}


def commands(root: Path, study: str, overrides: list[str] = (), rerun: bool = False) -> dict[str, list[str]]:
    uri = f"tracking.uri=sqlite:///{root}/mlflow.db"
    run = [str(BIN / "crossprune"), "-m", f"study={study}", "trainer.progress_bar=false", *overrides, uri]
    return {"study": run, **({"study rerun": run} if rerun else {}),
            "report": [str(BIN / "crossprune-report"), f"study={study}", uri, f"report.out={root}/report"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--study", default="seed_claims", help="the target holds for seed_claims only")
    parser.add_argument("--rerun", action="store_true", help="run the study again on the finished store")
    parser.add_argument("overrides", nargs="*", help="added to the study's command, e.g. seed=0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="study_end_to_end-") as tmp:
        root = Path(tmp)
        steps = commands(root, args.study, args.overrides, args.rerun)
        if args.dry:
            for name, argv in steps.items():
                print(f"{name}: (cd {root} && {shlex.join(argv)})")
            return
        seconds, last_lines = {}, ""
        for name, argv in steps.items():
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=root, env=ENV, capture_output=True, text=True)
            seconds[name] = time.perf_counter() - start
            if done.returncode:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                sys.exit(f"{shlex.join(argv)} exited {done.returncode}:\n{tail}")
            last_lines = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    table = Table("step", "command", "wall s", "target", title=f"{args.study} study + report, end to end, on an empty store",
                  caption=machine(default_threads=True))
    for name, argv in steps.items():
        shown = " ".join(a for a in argv[1:] if not a.startswith(("tracking.uri", "report.out")))
        table.add_row(name, f"{Path(argv[0]).name} {shown}", f"{seconds[name]:.0f}", "")
    table.add_section()
    table.add_row("total", "", f"{sum(s for n, s in seconds.items() if n != 'study rerun'):.0f}",
                  f"≤ {TARGET_S} s ({TARGET_S // 60} min)")
    if args.rerun:
        table.add_row("rerun ÷ first", "", f"{seconds['study rerun'] / seconds['study']:.3f}", f"≤ {RERUN_TARGET}")
    console = Console(width=140)
    console.print(table)
    console.print(f"report's last line: {last_lines}")


if __name__ == "__main__":
    main()
