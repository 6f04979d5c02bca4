"""A store that fails while a run uses it (a server gone, a full disk, a database error), as one line that names the
store and the cause; and SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt."""

import errno
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from crossprune.config.errors import StoreError, one_line, redact

DISK = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}  # a write the disk refused
FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}  # MLflow reads them at each request
SAVED: dict[str, str | None] = {}


class Terminated(BaseException):
    """SIGTERM (what schedulers and `docker stop` send): not an Exception, so nothing on the way swallows it."""


def chain(e: BaseException) -> list[BaseException]:
    """`e` and the exceptions behind it, outermost first."""
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def is_store_error(e: BaseException) -> bool:
    import requests  # noqa: PLC0415 (mlflow's own dependencies: loaded already where a run failed)
    import sqlalchemy.exc  # noqa: PLC0415
    import urllib3.exceptions  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    return isinstance(e, MlflowException | requests.RequestException | urllib3.exceptions.HTTPError
                      | sqlalchemy.exc.SQLAlchemyError | sqlite3.Error)


def unreachable(e: BaseException) -> bool:
    """Whether `e` says the store does not answer (refused, reset, timed out): the calls that would end its runs
    could only wait through their retries."""
    import requests  # noqa: PLC0415

    return any(isinstance(c, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError) for c in chain(e))


def fail_fast(e: BaseException) -> None:
    """After `e`, if the store stopped answering: no more retries, a short timeout, so the runs' endings that follow
    fail at once and the command says so in seconds (settle() restores them)."""
    if unreachable(e) and not SAVED:
        for name, value in FAST.items():
            SAVED[name] = os.environ.get(name)
            os.environ[name] = value


def settle() -> None:
    """MLflow's retries as they were before fail_fast."""
    for name, value in SAVED.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    SAVED.clear()


def store_failure(e: BaseException, uri: str) -> StoreError | None:
    """The one line for `e` if the store (or the disk under it) failed, else None: any other error is not the store's."""
    causes, store = chain(e), redact(uri)
    again = "run the same command again, which reuses every stage that finished"
    disk = next((c for c in causes if isinstance(c, OSError) and c.errno in DISK), None)
    if disk or any(isinstance(c, sqlite3.OperationalError) and "disk is full" in str(c) for c in causes):
        where = f"{disk.filename}: {disk.strerror}" if disk and disk.filename else disk.strerror if disk else "database or disk is full"
        return StoreError(f"the disk is full ({where}; store {store}): free space and {again}")
    if not any(is_store_error(c) for c in causes):
        return None
    if unreachable(e):
        root = next((c for c in reversed(causes) if isinstance(c, OSError)), causes[0])  # e.g. Connection refused
        return StoreError(f"the MLflow store at {store} stopped answering ({redact(one_line(root))[:300]}): once it answers, {again}")
    root = next((c for c in reversed(causes) if isinstance(c, sqlite3.Error)), causes[0])  # the database's own words
    return StoreError(f"the MLflow store at {store} failed: {redact(one_line(root))[:300]}; {again}")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside (a `with` or a decorated function), SIGTERM raises Terminated wherever the main thread is, where
    Python runs handlers (Lightning's own handler calls this one); a second SIGTERM is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the open runs are being marked: let that finish
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is terminate:  # after a SIGTERM it stays ignored: the process is ending
            signal.signal(signal.SIGTERM, before)
