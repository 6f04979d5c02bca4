"""A store that fails while a run uses it (a server gone, a full disk, a database error), as one line that names the
store and the cause; and SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt."""

import errno
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from crossprune.config.errors import StoreError, one_line, redact

DISK = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}  # a write the disk refused


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


def store_failure(e: BaseException, uri: str) -> StoreError | None:
    """The one line for `e` if the store (or the disk under it) failed, else None: any other error is not the store's."""
    causes = chain(e)
    if disk := next((c for c in causes if isinstance(c, OSError) and c.errno in DISK), None):
        return StoreError(f"cannot write {disk.filename or 'to the disk'}: {disk.strerror} (store {redact(uri)}): free space and "
                          "run the same command again, which reuses every stage that finished")
    if not any(is_store_error(c) for c in causes):
        return None
    root = next((c for c in reversed(causes) if isinstance(c, OSError)), causes[0])  # e.g. Connection refused
    return StoreError(f"the MLflow store at {redact(uri)} failed: {redact(one_line(root))[:300]}; run the same command "
                      "again once it answers, which reuses every stage that finished")


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
