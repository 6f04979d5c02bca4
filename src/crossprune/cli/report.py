"""The `crossprune-report` command: a study's runs → verdicts, plots and a report, in files and in MLflow."""

import math
import re
import sys
import time
from functools import partial
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from crossprune.config.errors import ConfigError, composing, redact_logs, stop_on_bad_input
from crossprune.config.writable import check_store
from crossprune.config.schema import (  # importing it registers the config's types
    unknown_key_message,
    unknown_keys,
)

CONF = str(Path(__file__).resolve().parents[1] / "conf")  # the package's conf: the top-level conf/, or a wheel's copy
COLOURS = {"supported": "green", "refuted": "red", "inconclusive": "yellow", "not measurable": "magenta"}


def report(cfg: DictConfig):
    """Read, judge, draw, write and log; any bad input raises ConfigError before a file is written."""
    from crossprune.report import (  # pandas, matplotlib, mlflow: once the config is good
        claims,
        plots,
        runs,
        write,
    )

    study = cfg.study.name if isinstance(cfg.study, DictConfig) else None  # study=x without conf/study/x.yaml
    if not study:
        raise ConfigError("no study: pass study=<file in conf/study> or study.name=<name>")
    r = cfg.report
    if not (isinstance(r.confidence, float) and 0 < r.confidence < 1):
        raise ConfigError(f"report.confidence must be a number in (0, 1), e.g. 0.95, got {r.confidence!r}")
    if not (isinstance(r.min_effect, float | int) and r.min_effect >= 0):
        raise ConfigError(f"report.min_effect must be a number >= 0, got {r.min_effect!r}")
    out = write.writable(Path(cfg.report.out or Path(cfg.paths.root) / "reports" / study))
    check_store(cfg.tracking)  # a server that is down, a driver that is missing: one line, not minutes of retries
    store = runs.open_store(cfg.tracking)
    from crossprune.store.locks import FAILURE_TAG, mark_dead_runs  # noqa: PLC0415 (mlflow)
    from crossprune.store.tracking import say  # noqa: PLC0415

    if dead := mark_dead_runs(store.client, [store.experiment_id]):  # a report or a pipeline killed with -9 stays RUNNING
        say(f"marked {dead} run(s) of processes that died FAILED (tag {FAILURE_TAG} says why)")
    table = runs.read(store, study)
    judged = claims.judge(table, cfg.report.min_effect, cfg.report.confidence)
    figures = plots.draw(table, judged, partial(runs.history, store), cfg.report.confidence)
    paths = write.files(out, study, table, judged, figures, cfg.report.min_effect, cfg.report.confidence, store)
    run_id = write.log_run(store, paths, study, cfg.report.min_effect, cfg.report.confidence, table.attrs.get(runs.UNFINISHED))
    log_verdicts(store.client, run_id, judged.verdicts, table)
    return judged, out, run_id


def log_verdicts(client, run_id: str, verdicts, table) -> None:
    """On the report run: each verdict's effect, CI and n as metrics (`capacity.mnist1d_shift/effect`: chartable
    across report runs), the verdict as a tag, the source commit, and the ids of the parent runs it read."""
    from mlflow.entities import Metric, RunTag  # noqa: PLC0415

    from crossprune.store.provenance import code_state  # noqa: PLC0415

    metrics, tags = {}, {}
    for v in verdicts.itertuples():
        cell = getattr(v, "cell", "all")  # a claim judged per cell (e.g. per sparsity) gets a name per cell
        name = re.sub(r"[^\w.\- /]", "_", f"{v.claim}.{v.pair}" + ("" if cell in ("all", None) else f".{cell}"))  # no `:` in MLflow keys
        numbers = {k: getattr(v, k, None) for k in ("effect", "ci_low", "ci_high", "n", "p_holm")}  # p_holm: the adjusted p
        metrics |= {f"{name}/{k}": float(x) for k, x in numbers.items() if x is not None and not math.isnan(float(x))}
        tags[f"crossprune.verdict.{name}"] = v.verdict
    commit, dirty = code_state()
    read = sorted(set(table["parent_id"]))
    tags |= {"mlflow.source.git.commit": commit, "mlflow.source.name": "crossprune-report", "mlflow.source.type": "LOCAL",
             "crossprune.git_dirty": dirty, "crossprune.runs_read": " ".join(read)[:8000],
             "crossprune.runs_read_count": str(len(read))}
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], tags=[RunTag(k, v) for k, v in tags.items()])


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    judged, out, run_id = stop_on_bad_input("crossprune-report", report, cfg)
    table = Table("claim", "pair", "cell", f"effect [{cfg.report.confidence:.0%} CI]", "n", "adj. p", "verdict",
                  title=escape(f"study {cfg.study.name}"))  # a name may hold [..]: text, not markup
    for r in judged.verdicts.itertuples():
        colour = COLOURS[r.verdict]
        effect = f"{signed(r.effect)} [{signed(r.ci_low)}, {signed(r.ci_high)}]"
        p = "—" if math.isnan(r.p_holm) else f"{min(r.p_holm, r.p_refute_holm):.2g}"
        table.add_row(escape(r.claim), escape(r.pair), escape(r.cell), effect, str(r.n), p, f"[{colour}]{r.verdict}[/]")
    console = Console() if Console().is_terminal else Console(width=max(Console().width, 110))  # a terminal's own width
    console.print(table)
    console.print(f"Report: {out.resolve() / 'report.md'} (and report.html); MLflow run {run_id}")


def signed(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:+.3f}"  # NaN: no interval (n too small)


def preflight(argv: list[str]) -> None:
    """Compose the command's config once, so an unknown study file or key is one line, not Hydra's usage."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion or args.config_dir:
        return
    named = [o.partition("=")[2] for o in args.overrides if o.startswith("study=")]
    if named and not Path(CONF, "study", f"{named[-1]}.yaml").exists() and "," not in named[-1]:
        options = ", ".join(sorted(f.stem for f in Path(CONF, "study").glob("*.yaml")))
        raise ConfigError(f"study={named[-1]}: no file conf/study/{named[-1]}.yaml (options: {options}); a study run "
                          f"under its own name (crossprune -m study=<file> study.name={named[-1]}) is read with "
                          f"study.name={named[-1]}")
    with composing(), initialize_config_dir(CONF, version_base="1.3"):
        unknown = unknown_keys(compose("config", overrides=list(args.overrides)))
    if unknown:
        raise ConfigError(unknown_key_message(unknown[0]))


def main() -> None:
    redact_logs()
    stop_on_bad_input("crossprune-report", preflight, sys.argv[1:])
    app()
