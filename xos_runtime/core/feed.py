"""The change feed: what remote engines long-poll to wake as fast as local ones.

Every committed change of the store (this process's writes, other processes' through the
store's own notifications) gets the next sequence number, with the names of the models it
touched. A client asks for the changes after the number it last saw and, when there are
none yet, waits (`GET /xosapi/v1/changes?since=N&timeout=S`) until one comes or its timeout
passes. `epoch` changes when the server restarts: numbers of another epoch mean nothing, and
a client that sees a new one re-reads what it cares about.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid
from typing import Any

from xos_runtime.store import ModelAccessor

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """Sequence-numbered changes of one store, kept for the last `history` of them."""

    def __init__(self, accessor: ModelAccessor, history: int = 1000):
        self.epoch = uuid.uuid4().hex
        self.seq = 0
        self._recent: collections.deque[tuple[int, frozenset[str]]] = collections.deque(
            maxlen=history
        )
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._closed = threading.Event()
        self._sub = accessor.subscribe()
        self._thread = threading.Thread(target=self._follow, name="xos-core-feed", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._closed.is_set():
            changed = self._sub.wait(timeout=1.0)
            if changed:
                self.record(changed)

    def record(self, models: set[str]) -> None:
        """A change of `models`: the next number, and every waiting client woken."""
        with self._lock:
            self.seq += 1
            self._recent.append((self.seq, frozenset(models)))
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def since(self, seq: int) -> dict[str, Any]:
        """The changes after `seq`: `models` is the sorted union of their model names, or
        None when `seq` is older than the history (or of no known state): anything may
        have changed."""
        with self._lock:
            current = self.seq
            oldest = self._recent[0][0] if self._recent else current + 1
            if seq > current or seq < 0 or (seq < current and seq + 1 < oldest):
                models: list[str] | None = None
            else:
                names: set[str] = set()
                for number, touched in self._recent:
                    if number > seq:
                        names.update(touched)
                models = sorted(names)
        return {"epoch": self.epoch, "seq": current, "models": models}

    async def wait(self, seq: int, timeout: float) -> dict[str, Any]:
        """`since(seq)`, once there is something after `seq` or `timeout` seconds passed."""
        event = asyncio.Event()
        key = (asyncio.get_running_loop(), event)
        with self._lock:
            ready = self.seq != seq
            if not ready:
                self._waiters.add(key)
        if not ready:
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    self._waiters.discard(key)
        return self.since(seq)

    def close(self) -> None:
        self._closed.set()
        self._sub.close()
        self._thread.join(timeout=2)
