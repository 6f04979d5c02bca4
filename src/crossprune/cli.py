"""The `crossprune` command: a Hydra app that validates every job first, runs the pipeline, prints a table."""

import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from crossprune.validate import ConfigError, first_line, one_line, validate

CONF = str(Path(__file__).resolve().parents[2] / "conf")
METRICS = ("A/acc", "A/probe_acc", "B/acc", "B/probe_acc", "sparsity")


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> None:
    from crossprune import pipeline  # heavy imports (mlflow, lightning) only once the config is known to be good

    pair = stop_on_bad_input(validate, cfg)
    results = stop_on_bad_input(pipeline.run, cfg, pair)  # e.g. a global mask that empties a layer
    table = Table("stage", "run", *METRICS, title=f"{cfg.pair.name} · {cfg.criterion.name} · sparsity {cfg.prune.sparsity}")
    for r in results:
        cells = [f"{r.metrics[m]:.3f}" if m in r.metrics else "—" for m in METRICS]
        table.add_row(r.stage, r.run_id[:8] + (" (cached)" if r.cached else ""), *cells)
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print(f"Open the MLflow UI:  mlflow ui --backend-store-uri {cfg.tracking.uri}")


def stop_on_bad_input(check, *args):
    """Run a check; a problem ends the command with one line on stderr and exit status 2."""
    try:
        return check(*args)
    except ConfigError as e:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]crossprune:[/] {e}", highlight=False)
        sys.exit(2)


def preflight(argv: list[str]) -> None:
    """Compose and validate every job of the command (each sweep point too) before anything runs."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return
    if args.config_dir or args.config_path or args.config_name:
        return  # configs beyond conf/: each job is still validated by the app before it trains
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
        jobs = BasicSweeper.split_arguments(parsed, max_batch_size=None)[0] if args.multirun else [args.overrides]
        with initialize_config_dir(CONF, version_base="1.3"):
            for overrides in jobs:
                validate(compose("config", overrides=list(overrides)))
    except MissingConfigException as e:  # an unknown group option: name the ones that exist
        missing = first_line(e).removeprefix("In 'config': ")
        raise ConfigError(f"{missing} (options: {', '.join(e.options or [])})") from e
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as e:  # Hydra's own message (a misspelt key, bad override syntax), on one line
        raise ConfigError(one_line(e)) from e


def main() -> None:
    stop_on_bad_input(preflight, sys.argv[1:])
    app()
