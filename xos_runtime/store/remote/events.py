"""`CoreEvents`: the calls of a client to a core's event bus (`core.events`).

Publish (`POST /xosapi/v1/events/<topic>`), fetch for a consumer group and commit: what
the remote accessor's `publish_event` and the engines' `RemoteBus` send. Messages come back
as the store's own `LogRecord`s, bytes decoded.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from xos_runtime.store.eventlog import LogRecord
from xos_runtime.store.remote.client import CoreClient

__all__ = ["EVENTS_PATH", "CoreEvents"]

#: Where a core's event bus topics are (`<EVENTS_PATH>/<topic>`).
EVENTS_PATH = "/xosapi/v1/events"


def _wire(data: bytes | str | None, binary: bool) -> str | None:
    """A key or value as the core's publish takes it: text, or base64 when `binary`."""
    if data is None:
        return None
    if isinstance(data, str) and not binary:
        return data
    raw = data.encode() if isinstance(data, str) else data
    if not isinstance(raw, bytes):
        raise TypeError(f"a message key or value must be bytes, str or None, not {type(raw)}")
    return base64.b64encode(raw).decode("ascii")


def _bytes(text: Any) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class CoreEvents:
    """A core's event bus, through one client (its user, retries and timeouts)."""

    def __init__(self, client: CoreClient):
        self.client = client

    @staticmethod
    def path(topic: str) -> str:
        return f"{EVENTS_PATH}/{quote(topic, safe='')}"

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        """One message (str as UTF-8, bytes as they are); its `(partition, offset)`. Not
        retried once sent: it would publish twice (`CoreUnavailable` says so)."""
        binary = isinstance(value, bytes) or isinstance(key, bytes)
        body: dict[str, Any] = {
            "value": _wire(value, binary),
            "key": _wire(key, binary),
            "encoding": "base64" if binary else "utf-8",
        }
        if headers:
            body["headers"] = [[str(k), _wire(bytes(v), True)] for k, v in headers]
        found = self.client.post(self.path(topic), body)
        return int(found["partition"]), int(found["offset"])

    def topics(self) -> list[str]:
        """The topics of the core's log."""
        return [str(t) for t in self.client.get(EVENTS_PATH)["topics"]]

    def fetch(
        self,
        topic: str,
        group: str,
        member: str,
        *,
        most: int = 100,
        wait: float = 0.0,
        positions: Mapping[int, int] | None = None,
    ) -> list[LogRecord]:
        """The messages for `group` of the partitions `member` holds, from the group's
        committed offsets or from `positions`, waiting up to `wait` seconds for one."""
        params = {"group": group, "member": member, "max": str(most), "wait": f"{wait:.3f}"}
        if positions:
            params["positions"] = ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))
        found = self.client.get(self.path(topic), params)
        return [
            LogRecord(
                topic,
                int(m["partition"]),
                int(m["offset"]),
                _bytes(m["key"]),
                _bytes(m["value"]),
                float(m["timestamp"]),
                tuple((str(k), base64.b64decode(v)) for k, v in m["headers"]),
            )
            for m in found["messages"]
        ]

    def commit(self, topic: str, group: str, member: str, offsets: Mapping[int, int]) -> None:
        """Record `group`'s next offset of each partition (all or nothing: `CoreConflict`
        when `member` no longer holds one). Sent again after a lost answer: it sets values."""
        body = {
            "group": group,
            "member": member,
            "offsets": [{"partition": p, "offset": o} for p, o in sorted(offsets.items())],
        }
        self.client.post(f"{self.path(topic)}/commit", body, idempotent=True)

    def leave(self, topic: str, group: str, member: str) -> None:
        """`member` leaves `group`: its partitions are free at once."""
        self.client.request("DELETE", self.path(topic), params={"group": group, "member": member})
