"""Can the run write where the config says, before anything runs: the MLflow store and the output paths.

Nothing here creates anything: MLflow would otherwise find an unusable store only after minutes of retries."""

import os
import tempfile
import urllib.error
import urllib.request
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlparse

from crossprune.config.errors import ConfigError

# Stores MLflow reaches through SQLAlchemy or its own clients: accepted as given (no cheap check that creates nothing).
OTHER_SCHEMES = ("postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
BARE = ("databricks", "databricks-uc")  # whole URIs that name a store without ://
TIMEOUT_S = 5  # one HTTP request: a server that does not answer within it is bad input


def check_store(tracking) -> None:
    """Raise ConfigError naming tracking.uri unless MLflow can keep runs there."""
    uri = str(tracking.uri)
    scheme = urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg2:// names a driver
    if scheme == "sqlite":
        check_sqlite(uri)
    elif scheme in ("http", "https"):
        check_server(uri)
    elif uri in BARE:
        return
    elif scheme in ("", "file"):
        path = urlparse(uri).path if scheme else uri
        if not path:
            raise ConfigError("tracking.uri is empty: use tracking.uri=sqlite:///mlruns/mlflow.db")
        raise ConfigError(f"tracking.uri={uri} is a folder, and MLflow keeps runs in a database: "
                          f"use tracking.uri=sqlite:///{Path(path) / 'mlflow.db'}")
    elif scheme not in OTHER_SCHEMES and scheme not in {e.name for e in entry_points(group="mlflow.tracking_store")}:
        raise ConfigError(f"tracking.uri={uri}: MLflow has no store for {scheme}:// "
                          "(sqlite:///<path>/mlflow.db, http(s)://<host>, postgresql://, mysql://, mssql://, databricks)")


def check_sqlite(uri: str) -> None:
    """The database file if present is a writable file, else its nearest existing folder is writable."""
    if not uri.startswith("sqlite:///"):
        raise ConfigError(f"tracking.uri={uri}: a local store is sqlite:///<relative path> or sqlite:////<absolute path>")
    path = uri.removeprefix("sqlite:///").partition("?")[0]  # sqlite:///x.db?timeout=20 takes driver options
    if path in ("", ":memory:"):
        return
    db = Path(path)
    if os.path.exists(db) and not db.is_file():
        raise ConfigError(f"tracking.uri={uri}: {db} is not a file")
    if os.path.exists(db) and not os.access(db, os.R_OK | os.W_OK):
        raise ConfigError(f"tracking.uri={uri}: {db} is not writable")
    problem = unwritable(db.parent)
    if problem:
        raise ConfigError(f"tracking.uri={uri}: {problem}")


@cache  # a sweep validates every job: ask a server once per process (a failure raises, so it is never cached)
def check_server(uri: str) -> None:
    """A tracking server answers its health check within TIMEOUT_S."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError as e:
        if e.code not in (401, 403):  # a server that wants credentials answers; MLflow asks for them when it is used
            raise ConfigError(f"tracking.uri={uri} is not an MLflow server: {uri}/health answers HTTP {e.code} {e.reason}") from e
    except (OSError, ValueError) as e:  # refused, unreachable, timed out, a malformed address
        reason = getattr(e, "reason", None) or e
        raise ConfigError(f"tracking.uri={uri} does not answer: {reason} (waited up to {TIMEOUT_S} s)") from e


def unwritable(folder: Path) -> str | None:
    """Why files cannot be made in `folder` or the folders that would be made for it, or None if they can."""
    existing = next(p for p in [folder, *folder.absolute().parents] if os.path.exists(p))  # False, not an error, where unreadable
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    try:  # access() says yes to root everywhere, /proc included: only trying tells. O_TMPFILE: a file with no name
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        return f"no file can be made in {existing} ({e.strerror})"
    return None


def check_output(key: str, value: str | None, folder: bool = False) -> None:
    """An output path (a file, or a folder when `folder`) that the run can create or overwrite."""
    if value is None:
        return
    path = Path(value)
    if os.path.exists(path) and path.is_dir() != folder:
        raise ConfigError(f"{key}={value} is a {'file' if folder else 'folder'}, not a {'folder' if folder else 'file'}")
    problem = unwritable(path if folder else path.parent)
    if problem:
        raise ConfigError(f"{key}={value} cannot be written: {problem}")
