"""The `crossprune` entry point: a first line at once, before Hydra, MLflow, torch and Lightning load (seconds on a
busy machine), then the command itself (crossprune.cli.app)."""

import sys

SILENT = {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--resolve"}


def main() -> None:
    if sys.stderr.isatty() and not SILENT & set(sys.argv[1:]):  # at a terminal only: a script reading stderr gets a bad input as one line; help and --cfg print only what they were asked for
        print("crossprune: composing the config and checking every job before anything runs …", file=sys.stderr, flush=True)
    from crossprune.cli.app import main as command

    command()
