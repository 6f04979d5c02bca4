"""Can the run write where the config says, before anything runs: the MLflow store and the output paths.

Nothing here creates anything: MLflow would otherwise find an unusable store only after minutes of retries."""

import base64
import os
import socket
import tempfile
import urllib.error
import urllib.request
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import unquote, urlparse

from crossprune.config.errors import ConfigError

# Stores MLflow reaches through SQLAlchemy (their port when the URI gives none) or Databricks' own client.
DATABASES = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
OTHER_SCHEMES = (*DATABASES, "databricks", "databricks-uc", "uc")
BARE = ("databricks", "databricks-uc")  # whole URIs that name a store without ://
TIMEOUT_S = 5  # one HTTP request: a server that does not answer within it is bad input
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite database (an empty file becomes one)


def check_store(tracking) -> None:
    """Raise ConfigError naming tracking.uri unless MLflow can keep runs there (and tracking.artifacts, when set to
    a local folder, can be written)."""
    uri = str(tracking.uri)
    scheme = urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg2:// names a driver
    artifacts = getattr(tracking, "artifacts", None)
    if artifacts and urlparse(str(artifacts)).scheme in ("", "file") and (problem := unwritable(Path(urlparse(str(artifacts)).path))):
        raise ConfigError(f"tracking.artifacts={artifacts} cannot be written: {problem}")
    if scheme == "sqlite":
        check_sqlite(uri)
    elif scheme in ("http", "https"):
        check_server(uri)
    elif scheme in DATABASES:
        check_database(uri, scheme)
    elif uri in BARE or scheme in ("databricks", "databricks-uc", "uc"):
        check_databricks(uri)
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
    if os.path.exists(db) and os.path.getsize(db) and not is_sqlite(db):
        raise ConfigError(f"tracking.uri={uri}: {db} is not an sqlite database: name a new file or an MLflow store")
    problem = unwritable(db.parent)
    if problem:
        raise ConfigError(f"tracking.uri={uri}: {problem}")


@cache  # a sweep validates every job: ask a server once per process (a failure raises, so it is never cached)
def check_server(uri: str) -> None:
    """A tracking server answers its health check within TIMEOUT_S (credentials in the URI sent as basic auth, as
    MLflow's client sends them: urllib takes none in the address)."""
    url = urlparse(uri)
    plain = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl().rstrip("/")
    request = urllib.request.Request(f"{plain}/health")
    if url.username is not None:
        token = base64.b64encode(f"{unquote(url.username)}:{unquote(url.password or '')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError as e:
        if e.code not in (401, 403):  # a server that wants credentials answers; MLflow asks for them when it is used
            raise ConfigError(f"tracking.uri={uri} is not an MLflow server: {uri}/health answers HTTP {e.code} {e.reason}") from e
    except (OSError, ValueError) as e:  # refused, unreachable, timed out, a malformed address
        reason = getattr(e, "reason", None) or e
        raise ConfigError(f"tracking.uri={uri} does not answer: {reason} (waited up to {TIMEOUT_S} s)") from e


def is_sqlite(db: Path) -> bool:
    try:
        with open(db, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def check_database(uri: str, scheme: str) -> None:
    """A database server answers on its port within TIMEOUT_S, and SQLAlchemy's driver for it is installed."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 (only for these stores)

    try:
        url = make_url(uri)
    except Exception as e:  # sqlalchemy.exc.ArgumentError: not a URL it can read
        raise ConfigError(f"tracking.uri={uri} is not a database URL: {e}") from e
    if url.host and not url.host.startswith("/"):  # no host: a local socket, which SQLAlchemy finds itself
        try:
            socket.create_connection((url.host, url.port or DATABASES[scheme]), timeout=TIMEOUT_S).close()
        except OSError as e:
            raise ConfigError(f"tracking.uri={uri} does not answer: {e.strerror or e} (waited up to {TIMEOUT_S} s)") from e
    try:
        url.get_dialect().import_dbapi()
    except ImportError as e:
        raise ConfigError(f"tracking.uri={uri}: the {url.drivername} driver is not installed ({e}): pip install it, or name "
                          f"an installed one, e.g. {scheme}+<driver>://") from e


def check_databricks(uri: str) -> None:
    """A Databricks store needs a workspace to talk to: its host in the environment or a profile in the config file."""
    profile = urlparse(uri).netloc or os.environ.get("DATABRICKS_CONFIG_PROFILE", "DEFAULT")
    config = Path(os.environ.get("DATABRICKS_CONFIG_FILE", Path.home() / ".databrickscfg"))
    found = os.environ.get("DATABRICKS_HOST") or (config.is_file() and f"[{profile}]" in config.read_text(errors="replace"))
    if not found:
        raise ConfigError(f"tracking.uri={uri} needs a Databricks workspace: set DATABRICKS_HOST and DATABRICKS_TOKEN, or "
                          f"add profile [{profile}] to {config} (databricks configure)")


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
    if os.path.exists(path) and not folder and not path.is_file():  # /dev/full takes no data; a pipe would block
        raise ConfigError(f"{key}={value} is a device or a pipe, not a file: name a file, e.g. {key}=summary.json")
    problem = unwritable(path if folder else path.parent)
    if problem:
        raise ConfigError(f"{key}={value} cannot be written: {problem}")


def check_hydra_dirs(hydra, multirun: bool) -> None:
    """Hydra's output folder for this command (hydra.run.dir, or hydra.sweep.dir for a multirun), which Hydra creates
    before the app starts."""
    key = "sweep" if multirun else "run"
    value = str(hydra[key].dir)
    if problem := unwritable(Path(value)):
        raise ConfigError(f"hydra.{key}.dir={value} cannot be written: {problem}")
