"""The `crossprune` command: a Hydra app that validates every job first, runs the pipeline, prints a table."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path, get_args_parser
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

import crossprune.config.schema  # noqa: F401  the config's types, in Hydra's ConfigStore before anything is composed
from crossprune.cli import sweeper
from crossprune.cli.compose import CONF, compose_jobs
from crossprune.cli.sweeper import jobs_of
from crossprune.config.errors import ConfigError, composing, redact_logs
from crossprune.config.errors import stop_on_bad_input as stop_with

stop_on_bad_input = partial(stop_with, "crossprune")


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float:
    from crossprune.cli import table  # mlflow, not torch: a job already in the store answers from it
    from crossprune.config.values import check_values
    from crossprune.store import answer, parent

    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else None
    overrides = list(hydra_cfg.overrides.task)  # the job's own overrides: what a sweep varies
    stop_on_bad_input(check_values, cfg)
    preflight_found = sweeper.answered.get(sweeper.job_id(overrides))  # this job, as the preflight found it
    if found := preflight_found[1] if preflight_found else answer.find(cfg):
        results = answer.reply(cfg, found, sweep, overrides)
    else:
        from crossprune import pipeline  # torch, Lightning, scikit-learn: only for a job with work to do
        from crossprune.cli.checks import validate
        from crossprune.stages.compute import share_cores

        if sweep is not None and cfg.compute.threads is None:  # a single run keeps torch's threads whatever launcher the config names
            share_cores(hydra_cfg.launcher.get("n_jobs"))  # joblib's workers split the cores
        pair = stop_on_bad_input(validate, cfg)
        results = stop_on_bad_input(run_point, pipeline.run, cfg, pair, sweep, overrides)
        if isinstance(results, str):  # a point whose data or weights failed it (a collapsed layer, a diverged loss)
            return failed_point(results, sweep)
    if sweep is None:  # a sweep prints one table for all its points when it ends
        table.print_pipeline(cfg, results)
    return stop_on_bad_input(parent.objective, cfg, results)  # what a sweeper that optimises (optuna) reads


def run_point(run, *args):
    """The pipeline's results, or the line saying why its data or weights failed it (its runs are FAILED, tagged
    crossprune.failure): a result of the experiment, not bad input, so a sweep goes on."""
    from crossprune.store.tracking import StageFailed  # noqa: PLC0415

    try:
        return run(*args)
    except StageFailed as e:
        return str(e)


def failed_point(reason: str, sweep: str | None) -> float:
    """Say why the point failed; a sweep goes on (its table lists it), a single run ends with exit status 1."""
    from crossprune.store.tracking import say  # noqa: PLC0415

    say(f"this point FAILED: {reason}" + ("; the sweep goes on" if sweep else ""))
    if sweep is None:
        sys.exit(1)
    return float("nan")  # what an optimising sweeper reads for a failed trial


def preflight(argv: list[str]) -> None:
    """Compose and validate every job of the command (each sweep point and study grid too) before anything runs."""
    args = get_args_parser().parse_args(argv)
    sweeper.answered.clear()  # what an earlier command in this process found is not this one's answer
    sweeper.preflighted = False
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return
    if args.config_path:
        return  # a config folder relative to the calling module: each job is still validated by the app before it trains
    config = args.config_name or "config"
    with composing(), config_search(args.config_dir):
        from crossprune.config.overrides import check_overrides  # noqa: PLC0415
        from crossprune.config.writable import check_hydra_dirs  # noqa: PLC0415

        swept = {o.key_or_group for o in OverridesParser.create().parse_overrides(args.overrides) if o.is_sweep_override()}
        check_overrides(args.overrides, swept if args.multirun else set())  # a swept key given twice, a name its file sets
        jobs = [args.overrides]
        if args.multirun and not other_sweeper(args.overrides):
            parsed = OverridesParser.create().parse_overrides(args.overrides)
            # Only the study (or experiment) and Hydra's own settings say what the sweep is; every job is validated below.
            fixed = [o.input_line for o in parsed if not o.is_sweep_override() and o.key_or_group.startswith(("study", "experiment", "paths", "hydra"))]
            sweep = compose(config, overrides=fixed, return_hydra_config=True)
            check_hydra_dirs(sweep.hydra, multirun=True)
            jobs = jobs_of(sweep, args.overrides)
        elif args.multirun:  # another sweeper (optuna) picks its points as it goes: the app checks each one
            parsed = OverridesParser.create().parse_overrides(args.overrides)
            jobs = [[o.input_line for o in parsed if not o.is_sweep_override()]]
        elif any(o.startswith("hydra.") for o in args.overrides):  # the default run dir is `.`, checked with the store
            check_hydra_dirs(compose(config, overrides=args.overrides, return_hydra_config=True).hydra, multirun=False)
        if len(jobs) > 1:  # what the next seconds (torch, Lightning and MLflow loading) are spent on
            from rich.console import Console  # noqa: PLC0415

            Console(stderr=True, soft_wrap=True).print(f"[dim]▸ {len(jobs)} jobs: each is checked (data, model, trainer) or found in the store before any runs[/]")
        from crossprune.config.values import check_values  # noqa: PLC0415

        composed = compose_jobs(config, jobs)  # every point, before any data loads
        for cfg in composed:
            check_values(cfg)  # a typo is told before anything heavy loads
        for overrides, cfg in zip(jobs, composed, strict=True):
            from crossprune.store import answer, parent  # noqa: PLC0415  (mlflow; torch and scikit-learn only for a job to run)

            check_overrides(args.overrides, stages_run=parent.needed(cfg))  # an objective this job would return NaN for

            if found := answer.find(cfg):  # a job the store answers was validated when it ran
                sweeper.answered[sweeper.job_id(overrides)] = (cfg, found)  # the study sweeper replies without launching it
            else:
                from crossprune.cli.checks import validate  # noqa: PLC0415  (torch: only for a job to run)

                validate(cfg)
        sweeper.preflighted = args.multirun and not other_sweeper(args.overrides)


@contextmanager
def config_search(config_dir: str | None) -> Iterator[None]:
    """Hydra initialised on conf/ for compose(), with --config-dir's folder where the command puts it (after conf/,
    before the structured configs)."""
    with initialize_config_dir(CONF, version_base="1.3"):
        if config_dir:
            folder = os.path.abspath(config_dir)
            if not os.path.isdir(folder):
                raise ConfigError(f"--config-dir {config_dir}: no such folder")
            search = create_config_search_path(CONF)
            search.prepend("command-line", f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
            GlobalHydra.instance().clear()
            Hydra.create_main_hydra2(task_name="app", config_search_path=search)
        yield


def other_sweeper(overrides: list[str]) -> bool:
    """Whether the command picks a sweeper other than `study` (Hydra's basic sweeper plus study grids)."""
    return any(o.split("=", 1)[0].lstrip("+~") == "hydra/sweeper" and o.split("=", 1)[-1] not in ("study", "basic") for o in overrides)


def answer_help(argv: list[str]) -> bool:
    """`--help` for the shipped configs, printed from one composition; False where Hydra must answer."""
    args = get_args_parser().parse_args(argv)
    if not args.help or args.config_dir or args.config_path or args.config_name:
        return False
    from crossprune.cli.help import app_help

    with composing():
        text = app_help(CONF, args.overrides, args.resolve)
    if text is not None:
        print(text)
    return text is not None


def main() -> None:
    redact_logs()  # Hydra logs each sweep point's overrides: never a password in tracking.uri
    stop_on_bad_input(one_mode, sys.argv[1:])
    if stop_on_bad_input(answer_help, sys.argv[1:]):
        return
    stop_on_bad_input(preflight, sys.argv[1:])
    app()


def one_mode(argv: list[str]) -> None:
    """-m with --cfg, --info or --shell-completion: Hydra would end in a traceback; one line says what to do."""
    args = get_args_parser().parse_args(argv)
    if args.multirun and (args.cfg or args.info or args.shell_completion):
        shown = "--cfg" if args.cfg else "--info" if args.info else "--shell-completion"
        raise ConfigError(f"{shown} shows one job and -m runs a sweep: drop -m and give each key one value "
                          "(e.g. seed=0, not seed=0,1) to see that job")
