"""Change notifications between machines through PostgreSQL's LISTEN/NOTIFY.

On a PostgreSQL store every write transaction sends `pg_notify(channel, payload)` before it
commits (PostgreSQL delivers it on commit, and only then). One listener thread per process
holds a dedicated connection that LISTENs on the channel and wakes the local subscribers.
The payload starts with the sending process's token, so a process ignores its own
notifications (it already woke its subscribers directly).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterable

from loguru import logger

#: Seconds the listener takes at most to notice `stop()`.
_STOP_WITHIN = 0.1

#: PostgreSQL limits a NOTIFY payload to 8000 bytes; model names beyond it are summarised.
_MAX_PAYLOAD = 7000


def channel_for(url: str) -> str:
    """The channel of a store: the same for every process that opens the same endpoint."""
    return "xos_runtime_" + hashlib.sha1(url.encode()).hexdigest()[:16]


def new_token() -> str:
    """Marks this process's notifications, so that its own listener can skip them."""
    return uuid.uuid4().hex[:12]


def payload(token: str, models: Iterable[str]) -> str:
    text = token + "|" + ",".join(sorted(models))
    return text if len(text) <= _MAX_PAYLOAD else token + "|*"


class PgListener:
    """LISTENs on `channel` in a daemon thread and calls `deliver(models)` for others' writes.

    `connect` returns a new psycopg connection in autocommit mode. A lost connection is
    reconnected after a second; notifications sent meanwhile are lost, which the engines'
    fallback poll covers.
    """

    def __init__(
        self,
        connect: Callable[[], object],
        channel: str,
        deliver: Callable[[set[str]], None],
        token: str,
    ):
        self.connect = connect
        self.channel = channel
        self.deliver = deliver
        self.token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xos-runtime-pg-listen", daemon=True)
        self._ready = threading.Event()

    def start(self, wait: float = 5.0) -> None:
        self._thread.start()
        self._ready.wait(wait)

    def _run(self) -> None:
        # An outage is told once, when it starts, and its end once: not every second.
        failing = False
        while not self._stop.is_set():
            try:
                conn = self.connect()
            except Exception as exc:
                if failing:
                    logger.debug("still cannot listen for store changes: {}", exc)
                else:
                    logger.warning("cannot listen for store changes (retrying): {}", exc)
                    failing = True
                self._stop.wait(1.0)
                continue
            try:
                conn.execute(f'LISTEN "{self.channel}"')  # type: ignore[attr-defined]
                if failing:
                    logger.info("listening for store changes again")
                    failing = False
                self._ready.set()
                while not self._stop.is_set():
                    # short waits: `stop()` (every run's exit) waits for the last one to end
                    wait = conn.notifies(timeout=_STOP_WITHIN)  # type: ignore[attr-defined]
                    for note in wait:
                        sender, _, names = str(note.payload).partition("|")
                        if sender != self.token:
                            self.deliver({n for n in names.split(",") if n})
            except Exception as exc:
                if not self._stop.is_set():
                    if not failing:
                        logger.warning(
                            "lost the store's change notifications ({}); reconnecting", exc
                        )
                        failing = True
                    self._stop.wait(1.0)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
