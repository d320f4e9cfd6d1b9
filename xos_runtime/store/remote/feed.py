"""`RemoteSubscription`: the change notifications of a remote accessor, from a core's feed.

A local accessor's engines wait on `subscribe().wait(timeout)` to wake as soon as the store
changes; over a core they wait on this, with the same face (`wait`, `post`, `close`). One
background thread per subscription long-polls the core's change feed
(`GET /xosapi/v1/changes?since=N&timeout=S`) and posts the names of the changed models. When
the feed cannot say what changed (`models: null`: the subscription fell behind its history)
or the core restarted (a new `epoch`), every model of the accessor is posted: anything may
have changed.

The thread never gives up: a core that does not answer is tried again with pauses (up to
`LONGEST_PAUSE`), said once at WARNING and once when it answers again. It polls through a
client of its own (the accessor's core, user and trust; `CoreClient.sibling`): the long
poll never holds a connection of the accessor's, and its pauses end at `close()`. A poll
waits at most `FEED_WAIT` seconds: `close()` returns at once (the thread is a daemon: a
process that stops need not wait for a poll in progress, which cost every `run` over a
core a second on its way out), and the thread ends when its last poll returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from xos_runtime.store.notify import ChangeHub, Subscription
from xos_runtime.store.remote.client import CoreClient

__all__ = ["CHANGES_PATH", "FEED_WAIT", "LONGEST_PAUSE", "RemoteSubscription"]

#: The core's change feed.
CHANGES_PATH = "/xosapi/v1/changes"
#: How long one poll waits at the core for a change (seconds).
FEED_WAIT = 4.0
#: The first and the longest pause between two tries while the core does not answer.
FIRST_PAUSE = 0.2
LONGEST_PAUSE = 5.0


class RemoteSubscription:
    """One listener of a core's changes: `wait(timeout)` returns the names of the models
    changed since the last call, or None when nothing came within `timeout`."""

    def __init__(self, client: CoreClient, model_names: Callable[[], Iterable[str]]):
        self._model_names = model_names
        self._inner: Subscription = ChangeHub().subscribe()
        self._closed = threading.Event()
        self._client = client.sibling(
            retry_for=0.0, read_timeout=FEED_WAIT + 10.0, sleep=self._pause
        )
        self._epoch: str | None = None
        self._seq = 0
        self._away = False
        # Where the feed stands now, so that a change right after `subscribe()` is seen;
        # a core that does not answer yet: everything is posted at its first answer.
        self._poll(None)
        self._thread = threading.Thread(target=self._follow, name="xos-remote-feed", daemon=True)
        self._thread.start()

    def _pause(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def post(self, models: Iterable[str]) -> None:
        """Record a change of `models` and wake the waiter."""
        self._inner.post(models)

    def wait(self, timeout: float | None = None) -> set[str] | None:
        """The models changed since the last call, or None if nothing came within `timeout`
        (at once once closed)."""
        return self._inner.wait(timeout)

    def close(self) -> None:
        """Stop listening: returns at once; the thread ends with its poll in progress."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._inner.close()

    def __enter__(self) -> RemoteSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the thread ------------------------------------------------------------------------

    def _follow(self) -> None:
        pause = FIRST_PAUSE
        while not self._closed.is_set():
            since = self._seq if self._epoch is not None else None
            if self._poll(since):
                pause = FIRST_PAUSE
            else:
                self._pause(pause)
                pause = min(pause * 2, LONGEST_PAUSE)
        self._client.close()

    def _poll(self, since: int | None) -> bool:
        """One request to the feed (waiting at the core with `since`); whether it answered."""
        params = {} if since is None else {"since": str(since), "timeout": f"{FEED_WAIT:g}"}
        try:
            found: Any = self._client.get(CHANGES_PATH, params)
            epoch, seq, models = str(found["epoch"]), int(found["seq"]), found.get("models")
        except Exception as exc:  # the thread must outlive every failure
            if not self._closed.is_set() and not self._away:
                self._away = True
                logger.warning(
                    "the change feed of the core at {} does not answer ({}); trying again "
                    "until it does",
                    self._client.base,
                    exc,
                )
            return False
        if self._closed.is_set():
            return True
        missed = self._away
        if self._away:
            self._away = False
            logger.info("the change feed of the core at {} answers again", self._client.base)
        if self._epoch is None:
            if missed:  # changes may have come while it did not answer
                self.post(self._model_names())
        elif epoch != self._epoch or models is None:
            self.post(self._model_names())
        elif models:
            self.post(str(m) for m in models)
        self._epoch, self._seq = epoch, seq
        return True
