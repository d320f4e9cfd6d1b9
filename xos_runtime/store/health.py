"""Whether the store answers: one log line when it goes away, one when it is back.

Every transaction of a `SqlStore` reports here. The first failure that looks like a lost
store (a dropped connection, a server that is down or restarting) logs one WARNING line with
the reason; the next success logs one INFO line with how long the store was gone. Retries in
between log nothing above DEBUG, so a 20-second outage reads as two lines, not thousands of
tracebacks.

`transient(exc)` also says which errors are worth retrying at once: lost connections,
serialization failures and deadlocks (PostgreSQL), and a busy SQLite database. Engines retry
those with backoff (`retrying`) instead of dying of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from loguru import logger

from xos_runtime.exceptions import StoreAway

__all__ = ["StoreHealth", "busy", "retrying", "transient"]

T = TypeVar("T")

#: SQLSTATEs of a lost store: connection exceptions (08xxx), the server shutting down or
#: restarting (57P01-57P03); and of a conflict the next try resolves: serialization
#: failure, deadlock.
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_CONFLICT_SQLSTATES = ("40001", "40P01")
_SQLITE_BUSY = ("database is locked", "database is busy")
#: SQLite's answers when its file cannot be reached for a moment; its other operational
#: errors (a syntax error, a missing table) come again however often the statement is tried.
_SQLITE_LOST = ("unable to open database file", "disk i/o error")


def _sqlstate(exc: sa.exc.DBAPIError) -> str:
    orig = exc.orig
    return str(getattr(orig, "sqlstate", "") or getattr(orig, "pgcode", "") or "")


def _busy(exc: sa.exc.DBAPIError) -> bool:
    """SQLite's answer while another process holds the write lock."""
    text = str(exc.orig).lower()
    return any(t in text for t in _SQLITE_BUSY)


def _is_lost(exc: sa.exc.DBAPIError) -> bool:
    """A lost store, as opposed to a lock conflict that the next try resolves."""
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state:
        return state.startswith(_LOST_SQLSTATES)
    if not isinstance(exc, sa.exc.OperationalError) or _busy(exc):
        return False
    if type(exc.orig).__module__.startswith("sqlite3"):
        return any(t in str(exc.orig).lower() for t in _SQLITE_LOST)
    # psycopg raises OperationalError without a SQLSTATE when the socket is gone.
    return True


def busy(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's answer while another process holds a lock (a store being
    created, or switched to WAL, answers so at once, without the busy timeout)."""
    return isinstance(exc, sa.exc.DBAPIError) and _busy(exc)


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a store error that goes away by retrying (a lost connection, a
    busy or conflicting database, a core that does not answer: `StoreAway`)."""
    if isinstance(exc, StoreAway):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return _is_lost(exc) or _busy(exc) or _sqlstate(exc).startswith(_CONFLICT_SQLSTATES)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _describe(exc: BaseException) -> str:
    name = type(getattr(exc, "orig", None) or exc).__name__
    return f"{name}: {_reason(exc)}"


class StoreHealth:
    """Tracks outages of one store and logs their start and end once each."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def failed(self, exc: BaseException) -> bool:
        """Note a failed transaction; returns whether it is a transient (retryable) error."""
        if not transient(exc):
            return False
        assert isinstance(exc, sa.exc.DBAPIError)  # transient() says so
        if _is_lost(exc):
            with self._lock:
                first = self._down_since is None
                if first:
                    self._down_since = self.clock()
            if first:
                logger.warning("store {} unreachable: {}", self.name, _describe(exc))
        return True

    def succeeded(self) -> None:
        """Note a transaction that worked (cheap when the store was not down)."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.info("store {} is back after {:.1f}s", self.name, self.clock() - since)


def retrying(
    fn: Callable[[], T],
    *,
    what: str,
    stopping: Callable[[], bool] = lambda: False,
    initial: float = 0.05,
    longest: float = 2.0,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """`fn()`, retried with backoff while it fails with a transient store error.

    For the engines' bookkeeping writes (claims, outcomes), which must not be lost to a cut
    connection or a deadlock: losing them would leave claims behind or sync objects twice.
    Gives up (re-raising) only when `stopping()` turns true. Other errors propagate at once.
    """
    delay = initial
    while True:
        try:
            return fn()
        except Exception as exc:  # a database's error, or a core that does not answer
            if not transient(exc) or stopping():
                raise
            logger.opt(exception=exc).debug("{} failed, retrying in {:.2f}s", what, delay)
        sleep(delay)
        delay = min(longest, delay * 2)
