"""The share of one default pipeline's wall time spent in MLflow, on a sqlite store and on a local `mlflow server`.

The pipeline runs in this process as the CLI runs it (compose the config, `validate`, `pipeline.run`), with
`cache=false` so every stage trains, under cProfile. MLflow's time is the cumulative time of every call from
crossprune's code into the `mlflow` package: entry edges only, so a call MLflow makes inside itself (or through
SQLAlchemy, requests, …) is not counted twice. cProfile slows Python more than torch's kernels, and MLflow is all
Python, so the profiled share leans high: read it as an upper bound. `mlflow.log_figure` renders each figure to PNG
(matplotlib) inside MLflow: that part is counted, and also shown on its own.

Run: .venv/bin/python benchmarks/mlflow_share.py [--rounds 3] [--quick]
"""

import argparse
import cProfile
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
import matplotlib
import mlflow
import torch
from hydra import compose, initialize_config_dir
from mlflow.tracking import fluent
from rich.console import Console
from rich.table import Table

from crossprune import pipeline
from crossprune.validate import validate

from _common import machine

CONF = str(Path(__file__).resolve().parents[1] / "conf")
OURS = str(Path(crossprune.__file__).resolve().parent)  # crossprune's code: where calls into MLflow start
MLFLOW = str(Path(mlflow.__file__).resolve().parent)
MATPLOTLIB = str(Path(matplotlib.__file__).resolve().parent)
QUICK = ["train_a.epochs=1", "finetune_b.epochs=1"]  # --quick: proves the script works; not the target's setting
TARGETS = {"sqlite": 0.05, "server": 0.10}


def fresh_mlflow() -> None:
    """No run, store or experiment carries over from one pipeline to the next (as tests/conftest.py does)."""
    while mlflow.active_run():
        mlflow.end_run()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(var, None)  # set_experiment exports MLFLOW_EXPERIMENT_ID
    fluent._active_experiment_id = None


def profiled_pipeline(overrides: list[str]) -> tuple[float, pstats.Stats]:
    """Wall seconds of validate + pipeline.run on the composed config, and their profile."""
    fresh_mlflow()
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    pipeline.run(cfg, validate(cfg))
    profile.disable()
    return time.perf_counter() - start, pstats.Stats(profile)


def mlflow_entries(stats: pstats.Stats) -> dict[str, tuple[float, int]]:
    """Seconds and calls of each MLflow function, counted only on calls that come from crossprune's code."""
    entries = defaultdict(lambda: [0.0, 0])
    for (file, line, name), (*_, callers) in stats.stats.items():
        if not file.startswith(MLFLOW):
            continue
        for (caller_file, *_), (_, calls, _, cumulative) in callers.items():
            if caller_file.startswith(OURS):
                where = f"mlflow{file.removeprefix(MLFLOW).removesuffix('.py').replace('/', '.')}.{name}"
                entries[where][0] += cumulative
                entries[where][1] += calls
    return {k: (s, n) for k, (s, n) in entries.items()}


def drawing_in_mlflow(stats: pstats.Stats) -> float:
    """Seconds of matplotlib called by MLflow: `log_figure` renders the figure to PNG, a cost of the figure itself."""
    return sum(cumulative for (file, *_), (*_, callers) in stats.stats.items() if file.startswith(MATPLOTLIB)
               for (caller_file, *_), (*_, cumulative) in callers.items() if caller_file.startswith(MLFLOW))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(root: Path, timeout_s: float = 180):
    """A local `mlflow server` on a fresh sqlite store; yields its URI once /health answers, stops it at the end."""
    port, log = free_port(), root / "server.log"
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/srv.db",
            "--default-artifact-root", str(root / "art"), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # its own group
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text().splitlines()[-15:])
                    sys.exit(f"mlflow server did not answer at {uri} (exit {server.poll()}):\n{tail}")
                time.sleep(0.5)
        yield uri
    finally:  # the server and the workers it started: the process group this script made for it
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds: one pipeline on each store per round")
    parser.add_argument("--quick", action="store_true", help=f"add {' '.join(QUICK)}: proves the script works, does not "
                        "measure the target")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the other benchmarks: steady timings on a shared CPU
    common = ["cache=false", "trainer.progress_bar=false", *(QUICK if args.quick else [])]
    walls, shares, drawing = defaultdict(list), defaultdict(list), defaultdict(list)
    entries = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="mlflow_share-") as tmp, mlflow_server(Path(tmp)) as server:
        root = Path(tmp)
        (root / "warmup").mkdir()
        fresh_mlflow()
        with initialize_config_dir(CONF, version_base="1.3"):  # untimed: lazy imports and first calls
            cfg = compose("config", overrides=[*common, *QUICK, f"tracking.uri=sqlite:///{root}/warmup/mlflow.db"])
        pipeline.run(cfg, validate(cfg))
        for round_ in range(args.rounds):
            (root / f"sqlite{round_}").mkdir()
            for store, uri in [("sqlite", f"sqlite:///{root}/sqlite{round_}/mlflow.db"), ("server", server)]:
                wall, stats = profiled_pipeline([*common, f"tracking.uri={uri}", f"tracking.experiment=share{round_}"])
                found = mlflow_entries(stats)
                walls[store].append(wall)
                shares[store].append(sum(s for s, _ in found.values()) / wall)
                drawing[store].append(drawing_in_mlflow(stats) / wall)
                for where, (s, n) in found.items():
                    entries[where][store].append((s, n))
    fresh_mlflow()

    title = (f"MLflow's share of one default pipeline (cache=false, validate + pipeline.run under cProfile) · median of "
             f"{args.rounds}" + (f" · --quick ({' '.join(QUICK)}): not the target's setting" if args.quick else ""))
    table = Table("store", "pipeline s (profiled)", "in mlflow s", "share", "target", "of which drawing figures",
                  title=title, caption=machine())
    for store, target in TARGETS.items():
        wall, share, draw = (statistics.median(x[store]) for x in (walls, shares, drawing))
        table.add_row(store, f"{wall:.2f}", f"{wall * share:.2f}", f"{share:.1%}", f"≤ {target:.0%}",
                      f"{wall * draw:.2f} s = {draw:.1%} (matplotlib inside log_figure)")
    top = Table("crossprune → mlflow entry", *[f"{s} s (calls)" for s in TARGETS], title="Where that time goes (median per pipeline)")
    med = lambda pairs: (statistics.median(s for s, _ in pairs), pairs[0][1]) if pairs else (0.0, 0)  # noqa: E731
    ranked = sorted(entries.items(), key=lambda kv: -sum(med(kv[1][s])[0] for s in TARGETS))
    for where, by_store in ranked[:10]:
        top.add_row(where, *[f"{med(by_store[s])[0]:.2f} ({med(by_store[s])[1]})" for s in TARGETS])
    console = Console(width=150)
    console.print(table)
    console.print(top)


if __name__ == "__main__":
    main()
