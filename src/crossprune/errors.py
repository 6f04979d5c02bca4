"""Bad input: one exception whose message is the one line the user sees, and how the commands show it (light: no
torch, no mlflow)."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import MissingConfigException
from rich.console import Console
from rich.markup import escape


class ConfigError(ValueError):
    """A config that cannot run; its message is the one line the user sees."""


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def one_line(e: Exception) -> str:
    """The whole message with its line breaks folded, for errors whose second line says what to do."""
    return " ".join(str(e).split()) or type(e).__name__


def stop_on_bad_input(prog: str, check, *args):
    """Run a check; a problem ends the command with one line on stderr and exit status 2."""
    try:
        return check(*args)
    except ConfigError as e:  # escaped: a [..] in a message is text, not rich markup
        Console(stderr=True, soft_wrap=True).print(f"[bold red]{prog}:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


@contextmanager
def composing() -> Iterator[None]:
    """Hydra's composition errors as one ConfigError line: an unknown option names the ones that exist."""
    try:
        yield
    except MissingConfigException as e:
        missing = first_line(e).removeprefix("In 'config': ")
        raise ConfigError(f"{missing} (options: {', '.join(e.options or [])})") from e
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as e:  # Hydra's own message (a misspelt key, bad override syntax), on one line
        raise ConfigError(one_line(e)) from e
