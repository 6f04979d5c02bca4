"""The share of one default pipeline's wall time spent in MLflow, on a sqlite store and on a local `mlflow server`.

The pipeline runs in this process as the CLI runs it (compose the config, `validate`, `pipeline.run`), with
`cache=false` so every stage trains. For the pipelines measured, MLflow's entry points are wrapped in wall-clock
timers (`time.perf_counter`): every public function of `mlflow.tracking.fluent` (and the same functions where `mlflow`
re-exports them), every public method of `MlflowClient` and its constructor, `ActiveRun.__exit__` (it ends the run),
`mlflow.set_tracking_uri`, `mlflow.artifacts.download_artifacts`, `mlflow.data.from_numpy` and the run-context tags
(`mlflow.tracking.context.registry.resolve_tags`). A call counts only at the outermost level (a per-thread depth
counter), so a fluent function and the client methods it calls count once; calls on other threads than the
pipeline's (a claim's lease renewal) are listed but left out of the share: the pipeline does not wait for them. No
profiler runs, so nothing is slowed down and the share is what a plain run pays. `mlflow.log_figure` renders each
figure to PNG (matplotlib's `Figure.savefig`) inside MLflow: `savefig` is timed too, and the share is given with and
without the drawing done inside an MLflow call; drawing crossprune does itself (a PNG it then logs as an artifact) is
shown apart, outside MLflow's time.

Run: .venv/bin/python benchmarks/mlflow_share.py [--rounds 3] [--quick]
"""

import argparse
import functools
import inspect
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
import mlflow
import mlflow.artifacts
import mlflow.data
import torch
from hydra import compose, initialize_config_dir
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient, fluent
from mlflow.tracking.context import registry
from rich.console import Console
from rich.table import Table

from crossprune import pipeline
from crossprune.cli.checks import validate

from _common import machine

CONF = str(Path(__file__).resolve().parents[1] / "conf")
QUICK = ["train_a.epochs=1", "finetune_b.epochs=1"]  # --quick: proves the script works; not the target's setting
TARGETS = {"sqlite": 0.05, "server": 0.10}
BACKGROUND = " [other thread]"  # an entry point called off the pipeline's thread: listed, not in the share


def fresh_mlflow() -> None:
    """No run, store or experiment carries over from one pipeline to the next (as tests/conftest.py does)."""
    while mlflow.active_run():
        mlflow.end_run()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(var, None)  # set_experiment exports MLFLOW_EXPERIMENT_ID
    fluent._active_experiment_id = None


def entry_points() -> list[tuple[object, str, str]]:
    """(owner, attribute, name) of each MLflow entry point that crossprune's code calls, or could."""
    points = []
    for attr, f in vars(fluent).items():
        if not attr.startswith("_") and inspect.isfunction(f) and f.__module__ == fluent.__name__:
            points += [(owner, attr, f"mlflow.{attr}") for owner in (fluent, mlflow) if vars(owner).get(attr) is f]
    points += [(MlflowClient, attr, f"MlflowClient.{attr}") for attr, f in vars(MlflowClient).items()
               if inspect.isfunction(f) and (not attr.startswith("_") or attr == "__init__")]
    return points + [(mlflow.ActiveRun, "__exit__", "mlflow.ActiveRun.__exit__"),
                     (mlflow, "set_tracking_uri", "mlflow.set_tracking_uri"),
                     (mlflow.artifacts, "download_artifacts", "mlflow.artifacts.download_artifacts"),
                     (mlflow.data, "from_numpy", "mlflow.data.from_numpy"),
                     (registry, "resolve_tags", "mlflow.tracking.context.registry.resolve_tags")]


class MlflowTimers:
    """While entered: MLflow's entry points (and matplotlib's `Figure.savefig`) wrapped in wall-clock timers.
    `entries`: seconds and calls of each entry point, outermost calls only (one on another thread than the one that
    entered gets BACKGROUND after its name); `drawing`: savefig's seconds inside an MLflow call and outside any."""

    def __init__(self):
        self.entries, self.drawing = defaultdict(lambda: [0.0, 0]), {"inside": 0.0, "outside": 0.0}
        self.local, self.patched = threading.local(), []

    def timed(self, name: str, f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            depth, start = getattr(self.local, "depth", 0), time.perf_counter()
            self.local.depth = depth + 1
            try:
                return f(*args, **kwargs)
            finally:
                self.local.depth = depth
                if not depth:  # outermost: what crossprune's code called
                    entry = self.entries[name if threading.get_ident() == self.thread else name + BACKGROUND]
                    entry[0] += time.perf_counter() - start
                    entry[1] += 1
        return wrapper

    def savefig(self, f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                self.drawing["inside" if getattr(self.local, "depth", 0) else "outside"] += time.perf_counter() - start
        return wrapper

    def patch(self, owner, attr: str, wrapper) -> None:
        self.patched.append((owner, attr, vars(owner)[attr]))
        setattr(owner, attr, wrapper)

    def __enter__(self):
        self.thread, wrappers = threading.get_ident(), {}
        try:
            for owner, attr, name in entry_points():
                original = vars(owner)[attr]  # a re-export gets the same wrapper as its original
                self.patch(owner, attr, wrappers.setdefault(id(original), self.timed(name, original)))
            self.patch(Figure, "savefig", self.savefig(Figure.savefig))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_):
        for owner, attr, original in reversed(self.patched):
            setattr(owner, attr, original)
        self.patched.clear()


def timed_pipeline(overrides: list[str]) -> tuple[float, MlflowTimers]:
    """Wall seconds of validate + pipeline.run on the composed config, and MLflow's timers over them."""
    fresh_mlflow()
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with MlflowTimers() as timers:
        start = time.perf_counter()
        pipeline.run(cfg, validate(cfg))
        wall = time.perf_counter() - start
    if not timers.entries:
        sys.exit("no MLflow call was timed: crossprune reaches MLflow by some name this script does not wrap")
    return wall, timers


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
    runs = defaultdict(list)  # store → the figures of each round's pipeline
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
                wall, timers = timed_pipeline([*common, f"tracking.uri={uri}", f"tracking.experiment=share{round_}"])
                in_mlflow = sum(s for where, (s, _) in timers.entries.items() if not where.endswith(BACKGROUND))
                inside = timers.drawing["inside"]
                runs[store].append({"wall": wall, "mlflow": in_mlflow, "share": in_mlflow / wall, "inside": inside,
                                    "without": (in_mlflow - inside) / wall, "outside": timers.drawing["outside"]})
                for where, (s, n) in timers.entries.items():
                    entries[where][store].append((s, n))
    fresh_mlflow()

    title = (f"MLflow's share of one default pipeline (cache=false, validate + pipeline.run, wall-clock timers around "
             f"MLflow's entry points) · median of {args.rounds}"
             + (f" · --quick ({' '.join(QUICK)}): not the target's setting" if args.quick else ""))
    table = Table("store", "pipeline s", "in mlflow s", "share", "target", "of which drawing figures s (savefig "
                  "inside log_figure)", "share without that drawing", "drawing outside mlflow s", title=title,
                  caption=machine())
    for store, target in TARGETS.items():
        m = {k: statistics.median(run[k] for run in runs[store]) for k in runs[store][0]}
        table.add_row(store, f"{m['wall']:.2f}", f"{m['mlflow']:.2f}", f"{m['share']:.1%}", f"≤ {target:.0%}",
                      f"{m['inside']:.2f}", f"{m['without']:.1%}", f"{m['outside']:.2f}")
    top = Table("mlflow entry point (outermost calls)", *[f"{s} s (calls)" for s in TARGETS],
                title="Where that time goes (median per pipeline)")
    med = lambda pairs: (statistics.median(s for s, _ in pairs), pairs[0][1]) if pairs else (0.0, 0)  # noqa: E731
    ranked = sorted(entries.items(), key=lambda kv: -sum(med(kv[1][s])[0] for s in TARGETS))
    for where, by_store in ranked[:10]:
        top.add_row(where, *[f"{med(by_store[s])[0]:.2f} ({med(by_store[s])[1]})" for s in TARGETS])
    console = Console(width=150)
    console.print(table)
    console.print(top)


if __name__ == "__main__":
    main()
