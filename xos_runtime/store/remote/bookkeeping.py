"""The pull and event engines' bookkeeping kept in a core's store: `RemoteSchedule` and
`RemoteEventAttempts`, the same methods with the same meaning as the local `Schedule` and
`EventAttempts`, over the core's routes (`core.bookkeeping`).

What `RemoteAccessor.schedule(owner)` and `RemoteAccessor.event_attempts(group)` return, so
that a pull or event engine over a core shares its runs and counts its failed messages with
the processes on the core's store.

Retries. Every call is retried by the client while the core does not answer, even after it
may have acted on it (`idempotent=True`). For `load` and `forget` that is harmless (a read,
and a delete of what is below an offset). A `take` or a `failed` whose answer was lost would
act twice: the core runs them as repeats, so they do not. A repeated `take` finds the row
as the first one left it (this owner, due at `now + interval`) and answers True again:
neither a second run nor a lost one. A repeated `failed` carries the same `error` and
`next_run` (an epoch time with jitter) as the call that stored them, and a row that holds
that pair already counts it: the answer is its count, not one more. These rules live in
the store's `Schedule.take` and `EventAttempts.failed` (`idempotent`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from xos_runtime.store.attempts import Attempts, MessageKey, PartitionKey
from xos_runtime.store.remote.client import CoreClient

__all__ = ["ATTEMPTS_PATH", "SCHEDULE_PATH", "RemoteEventAttempts", "RemoteSchedule"]

#: Where a core's schedule of interval jobs is (`<SCHEDULE_PATH>/<job>`).
SCHEDULE_PATH = "/xosapi/v1/schedule"
#: Where a core counts failed event messages (`<ATTEMPTS_PATH>/<group>/failed|load|forget`).
ATTEMPTS_PATH = "/xosapi/v1/attempts"
#: Most partitions one load or forget names (the core takes up to 500).
CHUNK = 500


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def _segment(name: str) -> str:
    """`name` as one path segment: every reserved character quoted, `/` included, and the
    dots too (a segment `..` would be folded away by the URL's normalisation)."""
    return quote(name, safe="").replace(".", "%2E")


class RemoteSchedule:
    """The shared schedule of interval jobs in a core's store, as process `owner` sees it."""

    def __init__(self, client: CoreClient, owner: str):
        self.client = client
        self.owner = owner

    def take(self, job: str, now: float, interval: float) -> bool:
        """True when this process gets the run of `job` due at `now` (next one: +interval)."""
        body = {"owner": self.owner, "now": now, "interval": interval}
        found = self.client.post(f"{SCHEDULE_PATH}/{_segment(job)}", body, idempotent=True)
        return bool(found["taken"])


class RemoteEventAttempts:
    """The failed calls of the messages of one consumer group, in a core's store."""

    def __init__(self, client: CoreClient, group: str):
        self.client = client
        self.group = group

    def _post(self, op: str, body: Mapping[str, Any]) -> Any:
        path = f"{ATTEMPTS_PATH}/{_segment(self.group)}/{op}"
        return self.client.post(path, dict(body), idempotent=True)

    def failed(self, message: MessageKey, error: str, next_run: float) -> int:
        """Count one more failed call of `message`; returns its failed calls in all."""
        topic, partition, offset = message
        body = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "error": error,
            "next_run": next_run,
        }
        return int(self._post("failed", body)["attempts"])

    def load(self, spans: Mapping[PartitionKey, tuple[int, int]]) -> dict[MessageKey, Attempts]:
        """The stored attempts of the messages in `spans`, `(topic, partition) -> (first
        offset, last offset)` (both included); messages never failed are absent."""
        found: dict[MessageKey, Attempts] = {}
        wanted = [
            {"topic": t, "partition": p, "first": first, "last": last}
            for (t, p), (first, last) in spans.items()
        ]
        for chunk in _chunks(wanted):
            for a in self._post("load", {"spans": chunk})["attempts"]:
                key = (str(a["topic"]), int(a["partition"]), int(a["offset"]))
                found[key] = Attempts(
                    int(a["attempts"]), str(a["last_error"]), float(a["next_run"])
                )
        return found

    def forget(self, committed: Mapping[PartitionKey, int]) -> None:
        """Drop the rows of the messages below the committed offsets (`(topic, partition) ->
        the next offset to consume`)."""
        below = [{"topic": t, "partition": p, "offset": o} for (t, p), o in committed.items()]
        for chunk in _chunks(below):
            self._post("forget", {"committed": chunk})
