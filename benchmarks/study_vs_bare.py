"""crossprune ÷ a bare PyTorch script on a study's points: points/hour of each, the ratio, and where crossprune's
time goes (training, evaluation and probes, scoring, MLflow, figures, composition, data, imports, the rest).

The sample is the first point of each of the study's grids at one seed (`--seed`). Each point runs three ways, side
by side, the order rotating from round to round so a busy spell of the shared CPU falls on all alike:
(a) crossprune in this process as one job of the CLI's sweep runs it (compose the config, `validate`,
`pipeline.run`) on a fresh sqlite store of its own, so every stage computes; (b) `_bare_point.py`: the same stages'
math as a bare script (same data, models, epochs, batch sizes, criteria, masks), test accuracy only; (c) the same
with every instrument crossprune logs (probes, fixed heads, CKA, references, mask agreement), the same functions.
Torch and BLAS on one thread in all three (compute.threads=1). crossprune's points/hour also pays, per point, what
the CLI adds outside the job: the sweep's preflight composition (one more composition) and the imports of a run
(a subprocess, less `python -c pass`) spread over the study's points, as one sweep process pays them once; the bare
script's imports (torch, and scikit-learn for (c)) likewise. No profiler runs during the timed rounds
(`--profile` runs cProfile on one more crossprune round afterwards).

Overrides after the options go to every point, all three ways (a lever to measure: `tracking.figures=false`).

Run: .venv/bin/python benchmarks/study_vs_bare.py [--rounds 3] [--study seed_claims] [--seed 0] [--quick] [--profile]
     [--only GRID ...] [override ...]
"""

import argparse
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import crossprune  # noqa: F401  first: lets torchvision (imported by Lightning) load on a CPU-only torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossprune import pipeline
from crossprune.cli.checks import validate
from crossprune.cli.sweeper import study_jobs
from crossprune.stages.compute import pin_threads

from _bare_point import Point
from _common import machine
from _stage_timers import StageTimers
from mlflow_share import fresh_mlflow

CONF = str(Path(__file__).resolve().parents[1] / "conf")
COMMON = ["trainer.progress_bar=false", "compute.threads=1"]
QUICK = ["train_a.epochs=1", "finetune_b.epochs=1"]  # --quick: proves the script works; not the target's setting
TARGET = 1.5
IMPORTS = {"crossprune": "import crossprune.cli.app; from crossprune import pipeline; from crossprune.cli import checks, table",
           "bare": "import torch", "bare + instruments": "import torch, sklearn.linear_model"}
CASES = ("crossprune", "bare", "bare + instruments")


def composed(overrides: list[str]):
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose("config", overrides=overrides)


def sample(study: str, seed: int, extra: list[str]) -> tuple[dict[str, list[str]], int]:
    """The first job of each grid at `seed` (grid name -> its overrides), and how many jobs the whole study has."""
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", [f"study={study}"], return_hydra_config=True)
    grids, params = OmegaConf.to_container(cfg.study.grids), OmegaConf.to_container(cfg.hydra.sweeper.params)
    total = len(study_jobs(params, grids, []))
    points = {name: [f"study={study}", *study_jobs(params, {name: grid}, [f"seed={seed}"])[0], *extra]
              for name, grid in grids.items()}
    return points, total


def run_crossprune(job: list[str], store: Path) -> dict[str, float]:
    """One job as the CLI's sweep runs it, on its own fresh store: seconds per category, and `total`."""
    fresh_mlflow()
    start = time.perf_counter()
    cfg = composed([*job, *COMMON, f"tracking.uri=sqlite:///{store}/mlflow.db"])
    composed_at = time.perf_counter()
    pair = validate(cfg)
    validated_at = time.perf_counter()
    with StageTimers() as timers:
        pipeline.run(cfg, pair, overrides=job)
    end = time.perf_counter()
    out = {"composition": composed_at - start, "data and checks (validate)": validated_at - composed_at, **timers.seconds}
    out["the rest (stage keys, files, claims, parent)"] = end - validated_at - sum(timers.seconds.values())
    return out | {"total": end - start}


def run_bare(job: list[str], instruments: bool) -> dict[str, float]:
    cfg = composed([*job, *COMMON])  # a bare script's constants: not timed
    start = time.perf_counter()
    point = Point(cfg, instruments)
    built = time.perf_counter()
    point.run()
    end = time.perf_counter()
    return {"data": built - start, "stages": end - built, "total": end - start}


def import_seconds(rounds: int) -> dict[str, float]:
    """Median seconds of each case's imports in a fresh interpreter, less `python -c pass`, interleaved."""
    times = defaultdict(list)
    for _ in range(rounds):
        for name, code in {"python": "pass", **IMPORTS}.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times.pop("python"))
    return {name: statistics.median(t) - base for name, t in times.items()}


def measure(points: dict, rounds: int, root: Path) -> list[dict]:
    """Per round: case -> grid -> category seconds; the cases' order rotates each round and each point."""
    results = []
    for r in range(rounds):
        this = {case: {} for case in CASES}
        for i, (grid, job) in enumerate(points.items()):
            for case in CASES[(r + i) % 3:] + CASES[: (r + i) % 3]:
                store = Path(tempfile.mkdtemp(dir=root))
                this[case][grid] = (run_crossprune(job, store) if case == "crossprune"
                                    else run_bare(job, case == "bare + instruments"))
            print(f"round {r + 1} · {grid}: " + " · ".join(f"{c} {this[c][grid]['total']:.1f} s" for c in CASES), flush=True)
        results.append(this)
    return results


def profile(points: dict, root: Path, top: int) -> str:
    """cProfile of one more crossprune round (it slows Python more than torch's kernels: read shares, not seconds)."""
    prof = cProfile.Profile()
    prof.enable()
    for job in points.values():
        run_crossprune(job, Path(tempfile.mkdtemp(dir=root)))
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def report(points: dict, results: list[dict], imports: dict, total_jobs: int, quick: bool) -> None:
    console = Console(width=170)
    n, rounds = len(points), len(results)
    sums = [{c: sum(g["total"] for g in res[c].values()) for c in CASES} for res in results]
    compose_s = [statistics.mean(g["composition"] for g in res["crossprune"].values()) for res in results]
    per_point = [{"crossprune": s["crossprune"] / n + c + imports["crossprune"] / total_jobs,
                  **{b: s[b] / n + imports[b] / total_jobs for b in CASES[1:]}} for s, c in zip(sums, compose_s)]
    ratios = {b: [p["crossprune"] / p[b] for p in per_point] for b in CASES[1:]}
    spread = lambda xs: f"{statistics.median(xs):.2f}× ({min(xs):.2f}–{max(xs):.2f})"  # noqa: E731
    title = (f"crossprune ÷ bare script on {n} points (the first of each grid), median of {rounds} rotated rounds"
             + (f" · --quick ({' '.join(QUICK)}): not the target's setting" if quick else ""))
    table = Table("case", "s per point", "points/hour", "crossprune ÷ this (min–max)", "target", title=title, caption=machine())
    for case in CASES:
        secs = statistics.median(p[case] for p in per_point)
        table.add_row(case, f"{secs:.2f}", f"{3600 / secs:.0f}", "" if case == "crossprune" else spread(ratios[case]),
                      f"≤ {TARGET}×" if case == "bare" else "")
    console.print(table)
    console.print(f"per point, beside the job: crossprune's preflight composition {statistics.median(compose_s):.2f} s; "
                  f"imports (less python -c pass) spread over the study's {total_jobs} jobs: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in imports.items()))

    grids = Table("grid", "job overrides", *[f"{c} s" for c in CASES], "crossprune ÷ bare", title="Per point (medians)")
    for grid, job in points.items():
        med = {c: statistics.median(res[c][grid]["total"] for res in results) for c in CASES}
        shown = " ".join(o for o in job if not o.startswith("study="))
        grids.add_row(grid, escape(shown), *[f"{med[c]:.1f}" for c in CASES], f"{med['crossprune'] / med['bare']:.2f}")
    console.print(grids)

    where = Table("crossprune's time in", "s per point", "share", title="Where crossprune's time goes (median over rounds of the sample's sums)")
    categories = sorted({k for res in results for g in res["crossprune"].values() for k in g if k != "total"})
    per_cat = {k: statistics.median(sum(g.get(k, 0.0) for g in res["crossprune"].values()) for res in results) / n for k in categories}
    whole = statistics.median(s["crossprune"] for s in sums) / n
    for k, v in sorted(per_cat.items(), key=lambda kv: -kv[1]):
        where.add_row(k, f"{v:.2f}", f"{v / whole:.0%}")
    where.add_row("(the job's wall time)", f"{whole:.2f}", "100%")
    bare_data = statistics.median(statistics.mean(g["data"] for g in res["bare"].values()) for res in results)
    where.caption = f"bare's own: building the data {bare_data:.2f} s per point (crossprune's is inside validate)"
    console.print(where)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds, each running every point three ways")
    parser.add_argument("--study", default="seed_claims", help="the target holds for seed_claims")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every sampled point")
    parser.add_argument("--quick", action="store_true", help=f"add {' '.join(QUICK)}: proves the script works")
    parser.add_argument("--only", nargs="*", default=None, help="sample only these grids")
    parser.add_argument("--profile", action="store_true", help="then cProfile one more crossprune round and print it")
    parser.add_argument("overrides", nargs="*", help="added to every point, e.g. tracking.figures=false")
    args = parser.parse_args()
    pin_threads(1)  # as compute.threads=1 does in the pipeline: the bare cases get it too
    points, total = sample(args.study, args.seed, [*(QUICK if args.quick else []), *args.overrides])
    if args.only:
        points = {k: v for k, v in points.items() if k in args.only}
    imports = import_seconds(3)
    with tempfile.TemporaryDirectory(prefix="study_vs_bare-") as tmp:
        root = Path(tmp)
        first = next(iter(points.values()))
        run_crossprune([*first, *QUICK], Path(tempfile.mkdtemp(dir=root)))  # warm-up: lazy imports, first calls
        run_bare([*first, *QUICK], True)
        results = measure(points, args.rounds, root)
        text = profile(points, root, 30) if args.profile else ""
    fresh_mlflow()
    report(points, results, imports, total, args.quick)
    if text:
        print(text)


if __name__ == "__main__":
    main()
