"""DVC's `study` stage: `crossprune -m study=<params.yaml's study>` with params.yaml's other settings as overrides of
every job, then a record of the runs it made (the report stage reads exactly those).

    python3 pipelines/study.py pipelines/out/study.json
"""

import json
import re
import sys
import time
from pathlib import Path

from interpreter import WORKSPACE, as_recorded, in_workspace, use_project_python

use_project_python()

from overrides import hydra_overrides, load, quoted  # noqa: E402  (after the interpreter is settled)


def main(record: Path) -> None:
    params = load()
    study = params.get("study")
    if not study:
        sys.exit("pipelines/study.py: params.yaml names no study (study: <a file in conf/study>)")
    overrides = hydra_overrides({k: v for k, v in params.items() if k not in ("study", "report")})
    # Runs made with overrides go under their own study name, so the report reads this variant's runs only.
    name = f"{study} ({' '.join(overrides)})" if overrides else study
    tracking = store(overrides)
    started_ms = int(time.time() * 1000)
    # The workspace's store and folders, whichever copy of it DVC runs this in: its runs outlive an experiment's copy.
    at = [f"paths.root={plain(str(WORKSPACE))}", f"tracking.uri={plain(tracking['uri'])}"]
    args = [f"study={study}", f"study.name={quoted(name)}", *overrides, "trainer.progress_bar=false"]
    crossprune(["-m", *args, *at])
    runs = parents(tracking, name, started_ms, set(args + at))
    record.parent.mkdir(parents=True, exist_ok=True)
    kept = {**tracking, "uri": as_recorded(tracking["uri"])}
    record.write_text(json.dumps({"study": study, "name": name, "overrides": overrides, "tracking": kept,
                                  "runs": runs}, indent=2) + "\n")
    print(f"{record}: {len(runs)} points of study {name}")


def store(overrides: list[str]) -> dict:
    """The MLflow store and experiment the jobs use: conf/'s, MLFLOW_TRACKING_URI, or a tracking.* override; a
    relative sqlite store is the workspace's."""
    from hydra import compose, initialize_config_dir

    from crossprune.cli.app import CONF

    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("config", overrides=[o for o in overrides if o.startswith(("tracking.", "paths."))])
    return {"uri": in_workspace(str(cfg.tracking.uri)), "experiment": str(cfg.tracking.experiment)}


def crossprune(args: list[str]) -> None:
    """The `crossprune` command in this process; bad input exits with its status 2, which fails the stage."""
    from crossprune.cli.app import main

    sys.argv = ["crossprune", *args]
    main()


def parents(tracking: dict, name: str, since_ms: int, shared: set[str]) -> list[dict]:
    """This sweep's parent runs, sorted: each run id with its point (the overrides that are its own)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking["uri"])
    experiment = client.get_experiment_by_name(tracking["experiment"])
    query = (f"tags.`crossprune.study` = '{name}' and tags.`crossprune.stage` = 'pipeline'"
             f" and attributes.start_time >= {since_ms}")
    found = client.search_runs([experiment.experiment_id], query, max_results=50_000)
    failed = lambda r: {"failed": r.data.tags.get("crossprune.failure", "")} if r.info.status == "FAILED" else {}  # noqa: E731
    return sorted(({"point": point(r.data.tags.get("crossprune.overrides", ""), shared), "run": r.info.run_id, **failed(r)}
                   for r in found), key=lambda p: p["point"])


def plain(value: str) -> str:
    """A path or URI as Hydra writes it back in a job's overrides: unquoted unless it must be (spaces, quotes)."""
    return value if re.fullmatch(r"[\w\-+./:~@%]+", value) else quoted(value)


def point(overrides: str, shared: set[str]) -> str:
    """A job's overrides (tag crossprune.overrides) less those every job got; case-blind: the sweeper writes True."""
    for override in sorted(shared, key=len, reverse=True):  # the study name holds the others: it goes first
        overrides = re.sub(rf"(^| ){re.escape(override)}(?= |$)", " ", overrides, flags=re.IGNORECASE)
    return " ".join(overrides.split())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 pipelines/study.py <record.json>   (dvc.yaml: pipelines/out/study.json)")
    main(Path(sys.argv[1]))
