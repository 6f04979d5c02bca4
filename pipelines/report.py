"""`python pipelines/report.py study=<name> …` is `crossprune-report study=<name> …`.

With `--from <study record>` it is DVC's `report` stage: the report of exactly the runs the study stage recorded,
whole in reports/dvc/ (and MLflow), and beside the record what git keeps to compare revisions: verdicts.csv,
metrics.json (DVC metrics) and plots/ (DVC plots).

    python3 pipelines/report.py --from pipelines/out/study.json
"""

import csv
import json
import shutil
import sys
from pathlib import Path

from interpreter import ROOT, in_workspace, use_project_python

use_project_python()

from overrides import hydra_overrides, load, quoted  # noqa: E402  (after the interpreter is settled)

FULL = ROOT / "reports" / "dvc"  # the whole report (Markdown, HTML, tables): git-ignored, also in MLflow
NUMBERS = {"effect": float, "ci_low": float, "ci_high": float, "n": int}


def stage(record_path: Path) -> None:
    record = json.loads(record_path.read_text())
    settings = hydra_overrides({"report": load().get("report") or {}})
    shutil.rmtree(FULL, ignore_errors=True)  # no figure of an earlier report is copied below as this one's
    try:
        report([*settings, f"study.name={quoted(record['name'])}", f"report.out={quoted(str(FULL))}",
                f"tracking.uri={quoted(in_workspace(record['tracking']['uri']))}",
                f"tracking.experiment={quoted(record['tracking']['experiment'])}"])
    except SystemExit as e:
        if e.code == 2:  # bad input; most often a fresh clone, whose MLflow store is empty
            print(f"{record_path} records runs of {record['tracking']['uri']}; if they are not there, rerun the study:"
                  " dvc repro -f", file=sys.stderr)
        raise
    out = record_path.parent
    shutil.copy(FULL / "verdicts.csv", out / "verdicts.csv")
    (out / "metrics.json").write_text(json.dumps(metrics(FULL / "verdicts.csv"), indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out / "plots", ignore_errors=True)
    (out / "plots").mkdir()
    for png in sorted(FULL.glob("*.png")):
        shutil.copy(png, out / "plots" / png.name)


def metrics(verdicts: Path) -> dict:
    """verdicts.csv as DVC metrics: claim → pair → effect, ci_low, ci_high, n, verdict (None: no interval at n < 2)."""
    with open(verdicts, newline="") as f:
        rows = list(csv.DictReader(f))
    nested = {}
    for row in rows:
        numbers = {k: cast(row[k]) if row[k] else None for k, cast in NUMBERS.items()}
        nested.setdefault(row["claim"], {})[row["pair"]] = {**numbers, "verdict": row["verdict"]}
    return nested


def report(args: list[str]) -> None:
    """The `crossprune-report` command in this process; bad input exits with its status 2."""
    from crossprune.cli.report import main

    sys.argv = ["crossprune-report", *args]
    main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--from"]:
        stage(Path(sys.argv[2]))
    else:
        report(sys.argv[1:])
