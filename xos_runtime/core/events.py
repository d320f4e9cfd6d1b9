"""The embedded event bus over HTTP: publish, fetch for a consumer group, commit.

The core serves its store's message log (`store.eventlog.EventLog`, the bus of
`event_bus.kind: store`), so that a remote script or runtime publishes into the same log as
the processes on the store, and consumes it as a member of a consumer group:

* `POST /xosapi/v1/events/<topic>` publishes one message (any authenticated user, as any
  process that opens the store may): `{"value", "key", "headers", "encoding"}`, answered
  201 `{"topic", "partition", "offset"}`. `encoding` (`utf-8`, the default, or `base64`)
  says how `key` and `value` are written; headers are `[name, base64]` pairs.
* `GET /xosapi/v1/events/<topic>?group=G&member=M&max=N&wait=S` (synchronizers) reads, for
  group G, the messages after the group's committed offset of each partition of the topic
  the member holds, waiting up to S seconds for one. The member takes the partitions of
  that topic its group leaves free (the same leases as local consumers, `LEASE_TTL`
  seconds, renewed by each fetch and commit): a partition a local `run` holds is not
  served. Nothing moves until a commit: fetching again without one delivers the same
  messages again (at least once). Keys and values come back base64-encoded (bytes may be
  anything), null for none.
* `POST /xosapi/v1/events/<topic>/commit` (synchronizers) records `{"group", "member",
  "offsets": [{"partition", "offset"}]}`: each offset is the next one to read (the last
  handled + 1, as Kafka's). All or nothing: 409 when the member does not hold one of the
  partitions (its lease ran out, another member took it).
* `DELETE /xosapi/v1/events/<topic>?group=G&member=M` (synchronizers): the member leaves
  its group, freeing its partitions at once.

A client that reads on before it commits (`RemoteBus`) says where it is with
`&positions=P:O,...`: the fetch reads those partitions from there instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

from xos_runtime.config import topic_name_error
from xos_runtime.core.errors import ApiError
from xos_runtime.core.params import count_param, seconds_param
from xos_runtime.core.threads import in_thread
from xos_runtime.store.eventlog import EventLog, LogRecord, PartitionLost

__all__ = ["LEASE_TTL", "MAX_FETCH", "MAX_WAIT", "EventApi"]

#: Seconds an HTTP member holds its partitions after its last fetch or commit.
LEASE_TTL = 30.0
#: Most messages one fetch returns (and its default), and its longest wait (seconds).
MAX_FETCH = 1000
DEFAULT_FETCH = 100
MAX_WAIT = 60.0
#: Seconds a waiting fetch looks again at most (partitions whose lease ran out; its own
#: lease renewed). A publish, or a member leaving, wakes it at once.
RECHECK = 5.0
#: Longest time (seconds) between two retention sweeps started by publishes.
SWEEP_EVERY = 60.0

_MEMBER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ENCODINGS = ("utf-8", "base64")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _message(r: LogRecord) -> dict[str, Any]:
    return {
        "partition": r.partition,
        "offset": r.offset,
        "key": _b64(r.key),
        "value": _b64(r.value),
        "timestamp": r.timestamp,
        "headers": [[k, _b64(v)] for k, v in r.headers],
    }


def topic_of(text: str) -> str:
    error = topic_name_error(text)
    if error is not None:
        raise ApiError(400, f"topic: {error}", field="topic")
    return text


def group_of(value: Any) -> str:
    ok = isinstance(value, str) and 0 < len(value) <= 255
    if not ok or any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in value):
        raise ApiError(
            400, "group: expected a consumer group name (1 to 255 characters)", field="group"
        )
    return str(value)


def _member(value: Any) -> str:
    if value is None:
        return "default"
    if not isinstance(value, str) or not _MEMBER.match(value):
        raise ApiError(
            400, "member: expected 1 to 64 letters, digits, '.', '_' or '-'", field="member"
        )
    return value


def owner_of(user: str, member: str) -> str:
    """The lease owner of an HTTP member: its name and its user's (two users' members never
    share a lease); never the shape of a local consumer's (`EventLog.new_owner`)."""
    return f"http:{member}:{hashlib.sha256(user.encode()).hexdigest()[:12]}"


def _bytes(name: str, value: Any, encoding: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: expected a string or null", field=name)
    if encoding == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:  # binascii.Error, or a character that is not ASCII
            raise ApiError(400, f"{name}: not base64", field=name) from None
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name}: the value is not UTF-8 text", field=name) from None


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, "headers: expected a list of [name, base64]", field="headers")
    out: list[tuple[str, bytes]] = []
    for i, pair in enumerate(raw):
        ok = isinstance(pair, list) and len(pair) == 2
        ok = ok and all(isinstance(x, str) for x in pair)
        data = None
        if ok:
            try:
                pair[0].encode("utf-8")
                data = base64.b64decode(pair[1], validate=True)
            except ValueError:  # UnicodeEncodeError, binascii.Error, non-ASCII base64
                ok = False
        if not ok or data is None:
            raise ApiError(
                400, f"headers[{i}]: expected [name, base64], got {pair!r:.80}", field="headers"
            )
        out.append((pair[0], data))
    return out


_POSITION = re.compile(r"^(\d{1,9}):(\d{1,18})$")


def _positions(text: str | None) -> dict[int, int]:
    """`?positions=P:O,P:O`: where a client's own consumer is, by partition (it read up to
    there without committing yet)."""
    if text is None or text == "":
        return {}
    out: dict[int, int] = {}
    parts = text.split(",")
    for part in parts:
        found = _POSITION.match(part)
        if found is None or len(parts) > 1000:
            raise ApiError(
                400,
                f"positions: expected partition:offset[,partition:offset], got {text!r:.60}",
                field="positions",
            )
        out[int(found.group(1))] = int(found.group(2))
    return out


def _offset(item: Any, ends: Mapping[int, int]) -> tuple[int, int] | None:
    """`(partition, offset)` of one item of a commit, or None when it is not one: a
    partition of the topic and an offset from 0 to its end."""
    if not isinstance(item, Mapping) or set(item) != {"partition", "offset"}:
        return None
    p, o = item["partition"], item["offset"]
    if type(p) is not int or type(o) is not int or p not in ends or not 0 <= o <= ends[p]:
        return None
    return p, o


class _Wakeups:
    """Wakes the fetches waiting in the event loop when a message is published (from any
    process on the store): one thread follows the log's notifications."""

    def __init__(self, log: EventLog):
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._closed = threading.Event()
        self._sub = log.subscribe()
        self._thread = threading.Thread(target=self._follow, name="xos-core-events", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._closed.is_set():
            if self._sub.wait(timeout=1.0):
                with self._lock:
                    waiters = list(self._waiters)
                for loop, event in waiters:
                    loop.call_soon_threadsafe(event.set)

    def add(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        key = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(key)
        return key

    def remove(self, key: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiters.discard(key)

    def close(self) -> None:
        self._closed.set()
        self._sub.close()
        self._thread.join(timeout=2)


class EventApi:
    """The event routes' work over one store's log (module docstring).

    `retention`: seconds a message is kept (`event_bus.retention`); publishes sweep older
    ones at most every `SWEEP_EVERY` seconds. `partitions`: of each topic a publish makes.
    """

    def __init__(self, log: EventLog, *, retention: float | None = None, partitions: int = 1):
        self.log = log
        self.retention = retention
        self.partitions = partitions
        self._next_sweep = 0.0
        self._wakeups: _Wakeups | None = None

    def topics(self) -> dict[str, Any]:
        """The topics of the log (a consumer of a pattern matches them itself)."""
        return {"topics": sorted({topic for topic, _ in self.log.ends()})}

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, topic: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body must be a JSON object: value, key, headers, encoding")
        unknown = set(body) - {"value", "key", "headers", "encoding"}
        if unknown:
            key = sorted(unknown)[0]
            raise ApiError(
                400, f"unknown key {key!r}; expected value, key, headers, encoding", field=key
            )
        encoding = body.get("encoding", "utf-8")
        if encoding not in _ENCODINGS:
            raise ApiError(400, "encoding: expected utf-8 or base64", field="encoding")
        if "value" not in body:
            raise ApiError(400, "value: required (a string, or null)", field="value")
        value = _bytes("value", body["value"], encoding)
        key = _bytes("key", body.get("key"), encoding)
        headers = _headers(body.get("headers"))
        partition, offset = self.log.append(topic, key, value, headers, partitions=self.partitions)
        self._sweep()
        return {"topic": topic, "partition": partition, "offset": offset}

    def _sweep(self) -> None:
        if self.retention is None:
            return
        now = self.log.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + min(SWEEP_EVERY, self.retention / 10)
            self.log.sweep(now - self.retention)

    # -- consuming ----------------------------------------------------------------------------

    def _held(self, topic: str, group: str, owner: str) -> dict[int, tuple[int, int]]:
        """The partitions of `topic` this member holds now (taking the free ones), each with
        where the group goes on and its end."""
        ends = {p: n for (t, p), n in self.log.ends().items() if t == topic}
        if not ends:
            return {}
        self.log.join(group, [(topic, p) for p in ends])
        owned = self.log.claim(group, owner, LEASE_TTL, topics=[topic])
        return {
            p: (committed or 0, ends[p])
            for (t, p), committed in owned.items()
            if t == topic and p in ends
        }

    def read(
        self,
        topic: str,
        group: str,
        owner: str,
        most: int,
        positions: Mapping[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to `most` messages of the partitions this member holds, from the group's
        committed offsets (or from `positions`, by partition: a client's own)."""
        out: list[dict[str, Any]] = []
        for partition, (committed, end) in sorted(self._held(topic, group, owner).items()):
            start = (positions or {}).get(partition, committed)
            if start >= end or len(out) >= most:
                continue
            out.extend(
                _message(r) for r in self.log.read((topic, partition), start, most - len(out))
            )
        return out

    def fetch_params(
        self, params: Mapping[str, str]
    ) -> tuple[str, str, int, float, dict[int, int]]:
        group = group_of(params.get("group"))
        member = _member(params.get("member"))
        most = count_param(params, "max", DEFAULT_FETCH, MAX_FETCH)
        wait = seconds_param(params, "wait", 0.0, MAX_WAIT)
        return group, member, most, wait, _positions(params.get("positions"))

    async def fetch(
        self,
        topic: str,
        group: str,
        owner: str,
        most: int,
        wait: float,
        positions: Mapping[int, int] | None = None,
    ) -> dict[str, Any]:
        """The messages for the group (`read`), waiting up to `wait` seconds for some."""
        if self._wakeups is None:
            self._wakeups = _Wakeups(self.log)
        deadline = time.monotonic() + wait
        while True:
            key = self._wakeups.add()  # before the read: a publish after it wakes the wait
            try:
                found = await in_thread(self.read, topic, group, owner, most, positions)
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return {"topic": topic, "group": group, "messages": found}
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(key[1].wait(), min(left, RECHECK))
            finally:
                self._wakeups.remove(key)

    def leave(self, topic: str, group: str, owner: str) -> None:
        """Free the partitions the member holds in `group` (every topic's: it leaves), so
        that others take them at once rather than when its lease runs out."""
        self.log.release(group, owner)

    def commit(self, topic: str, user: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body must be a JSON object: group, member, offsets")
        unknown = set(body) - {"group", "member", "offsets"}
        if unknown:
            key = sorted(unknown)[0]
            raise ApiError(400, f"unknown key {key!r}; expected group, member, offsets", field=key)
        group = group_of(body.get("group"))
        owner = owner_of(user, _member(body.get("member")))
        raw = body.get("offsets")
        if not isinstance(raw, list):
            raise ApiError(400, "offsets: expected a list of {partition, offset}", field="offsets")
        ends = {p: n for (t, p), n in self.log.ends().items() if t == topic}
        offsets: dict[tuple[str, int], int] = {}
        for i, item in enumerate(raw):
            where = _offset(item, ends)
            if where is None:
                raise ApiError(
                    400,
                    f"offsets[{i}]: expected {{partition, offset}} of a partition of {topic} "
                    f"and an offset up to its end, got {item!r:.80}",
                    field="offsets",
                )
            offsets[(topic, where[0])] = where[1]
        held = self.log.holders(group, owner, list(offsets))
        lost = sorted(p for t, p in offsets if (t, p) not in held)
        if lost:
            raise ApiError(
                409,
                f"group {group}: this member does not hold {topic} partitions {lost} (its "
                "lease ran out or another member has them): fetch again",
                field="offsets",
            )
        try:
            self.log.commit(group, owner, offsets, LEASE_TTL)
        except PartitionLost as exc:  # taken between the look and the commit
            raise ApiError(409, str(exc), field="offsets") from None
        return {"topic": topic, "group": group, "committed": len(offsets)}

    def close(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
