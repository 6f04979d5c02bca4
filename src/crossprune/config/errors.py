"""Bad input: one exception whose message is the one line the user sees, and how the commands show it (light: no
torch, no mlflow)."""

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError
from rich.console import Console
from rich.markup import escape

from crossprune.config.schema import unknown_key_message

# What an OmegaConf type error says was expected, in plain words.
EXPECTED = {"to Integer": "an integer", "to Float": "a number", "not a valid bool": "true or false",
            "ListConfig, list or tuple": "a list"}


# `scheme://user:password@host` (up to the last @ before the path; `\:` as a sweep's overrides escape it) and
# `?password=…`-like query values.
USERINFO = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*\\?://)(?P<user>[^:/@\s\\]*)(?P<colon>\\?:)[^\s/]*@")
SECRET_QUERY = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd|secret|token|access_token|api_key|apikey)=)[^&;\s]*", re.I)


class ConfigError(ValueError):
    """A config that cannot run; its message is the one line the user sees."""


class StoreError(ConfigError):
    """The MLflow store failed while a run used it (a server gone, a disk full): one line naming the store and why."""


def redact(text: str) -> str:
    """`text` with any password a URI carries replaced by ***: a credential never reaches the terminal, a log, a tag
    or a param."""
    return SECRET_QUERY.sub(r"\g<key>***", USERINFO.sub(r"\g<scheme>\g<user>\g<colon>***@", str(text)))


def redact_logs() -> None:
    """Every log record's message redacted, whoever logs it (Hydra logs a sweep's overrides, urllib3 the URLs it
    retries); once per process."""
    make = logging.getLogRecordFactory()
    if getattr(make, "redacts", False):
        return

    def record(*args, **kwargs) -> logging.LogRecord:
        made = make(*args, **kwargs)
        made.msg, made.args = redact(made.getMessage()), ()
        return made

    record.redacts = True
    logging.setLogRecordFactory(record)


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
        if os.environ.get("HYDRA_FULL_ERROR") == "1":  # as Hydra does: the whole traceback, for debugging
            raise
        Console(stderr=True, soft_wrap=True).print(f"[bold red]{prog}:[/] {escape(redact(e))}", highlight=False)
        sys.exit(2)


@contextmanager
def composing() -> Iterator[None]:
    """Hydra's composition errors as one ConfigError line: an unknown option names the ones that exist."""
    try:
        yield
    except MissingConfigException as e:
        missing = first_line(e).removeprefix("In 'config': ")
        raise ConfigError(f"{missing} (options: {', '.join(e.options or [])})") from e
    except OverrideParseException as e:  # its message says where the grammar broke, not in which override
        raise ConfigError(f"{e.override}: {one_line(e)}") from e
    except (ConfigError, KeyboardInterrupt):
        raise
    except Exception as e:  # a wrong type or unknown key named as OmegaConf names it, else Hydra's message on one line
        raise ConfigError(schema_message(omegaconf_cause(e)) or one_line(e)) from e


def omegaconf_cause(e: BaseException) -> OmegaConfBaseException | None:
    """The OmegaConf error behind Hydra's composition error, which names the full key (Hydra's own line does not)."""
    while e is not None and not isinstance(e, OmegaConfBaseException):
        e = e.__cause__ or e.__context__
    return e


def schema_message(e: OmegaConfBaseException | None) -> str | None:
    """A value of the wrong type or a key the schema lacks, as one line naming the key; None for anything else."""
    key = getattr(e, "full_key", None)
    if not key:
        return None
    if isinstance(e, ValidationError):
        expected = next((v for k, v in EXPECTED.items() if k in first_line(e)), None)
        if expected is None:
            return f"{key}: {first_line(e)}"
        example = f", e.g. {key}=[{e.value}]" if expected == "a list" else ""
        return f"{key} must be {expected}{example}, got {e.value!r}"
    if isinstance(e, ConfigAttributeError | ConfigKeyError) and "is not in struct" not in first_line(e):
        return unknown_key_message(key)  # a typed node: appending with + is refused too, so Hydra's advice is wrong
    return None
