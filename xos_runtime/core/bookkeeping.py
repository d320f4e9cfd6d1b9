"""The pull and event engines' bookkeeping over HTTP: the shared schedule, failed messages.

A remote runtime's pull engine shares each pull step's runs with the processes on the
core's store, and its event engine counts the failed calls of a message where theirs are
counted. The core runs the store's own rules (`store.schedule.Schedule`,
`store.attempts.EventAttempts`) on their behalf; these routes only check the bodies.
Synchronizers only (403 for other users):

* `POST /xosapi/v1/schedule/<job>` `{"owner", "now", "interval"}` -> `{"job", "taken"}`:
  whether `owner` gets the run of `job` due at `now` (`Schedule.take`).
* `POST /xosapi/v1/attempts/<group>/failed` `{"topic", "partition", "offset", "error",
  "next_run"}` -> `{"attempts"}`: one more failed call of a message (`EventAttempts.failed`).
* `POST /xosapi/v1/attempts/<group>/load` `{"spans": [{"topic", "partition", "first",
  "last"}]}` -> `{"attempts": [{"topic", "partition", "offset", "attempts", "last_error",
  "next_run"}]}`: the stored attempts of the messages in those offset spans.
* `POST /xosapi/v1/attempts/<group>/forget` `{"committed": [{"topic", "partition",
  "offset"}]}` -> `{"group"}`: drop the rows below the committed offsets.

A take or a failed call may be sent again after a lost answer: both run with
`idempotent=True`, so that the repeat neither counts twice nor loses the run (the rules are
in the store's modules). Names are path segments that may hold any character (a client
quotes them, `/` included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xos_runtime.core.bodies import text_ok
from xos_runtime.core.errors import ApiError
from xos_runtime.core.events import group_of, topic_of
from xos_runtime.store import ModelAccessor

__all__ = ["MAX_SPANS", "Bookkeeping"]

#: Most `(topic, partition)` entries of one load or forget (a forget is one SQL condition
#: per entry, and SQLite's expressions are at most 1000 deep).
MAX_SPANS = 500
#: Longest job name and owner (the schedule table's columns).
MAX_JOB = 400
MAX_OWNER = 200
#: Bounds of the times and intervals of a body (seconds): far beyond any real clock, and
#: their sum stays finite.
MAX_TIME = 1e15
MAX_INTERVAL = 1e9
MAX_PARTITION = 2**31 - 1
MAX_OFFSET = 2**63 - 1


def _fields(body: Any, names: Sequence[str], optional: Sequence[str] = ()) -> Mapping[str, Any]:
    """`body` as a JSON object holding `names` (and maybe `optional`), nothing else."""
    expected = ", ".join([*names, *optional])
    if not isinstance(body, Mapping):
        raise ApiError(400, f"the body must be a JSON object: {expected}")
    for key in body:
        if key not in names and key not in optional:
            raise ApiError(400, f"unknown key {key!r:.60}; expected {expected}", field=str(key))
    for name in names:
        if name not in body:
            raise ApiError(400, f"{name}: required", field=name)
    return body


def _number(value: Any, name: str, low: float, high: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not low <= value <= high:  # NaN compares false; a huge int is compared exactly
        raise ApiError(400, f"{name}: expected a number from {low:g} to {high:g}", field=name)
    return float(value)


def _integer(value: Any, name: str, high: int, field: str | None = None) -> int:
    if type(value) is not int or not 0 <= value <= high:
        raise ApiError(400, f"{name}: expected an integer from 0 to {high}", field=field or name)
    return value


def _text(value: Any, name: str, longest: int | None = None) -> str:
    if not isinstance(value, str) or (longest is not None and not 0 < len(value) <= longest):
        size = f" of 1 to {longest} characters" if longest is not None else ""
        raise ApiError(400, f"{name}: expected a string{size}", field=name)
    text_ok(name, value)
    return value


def _topic(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{name}: expected a topic name", field=name)
    try:
        return topic_of(value)
    except ApiError as exc:
        raise ApiError(400, f"{name}: {exc.message}", field=name) from None


def _entries(body: Mapping[str, Any], key: str, names: Sequence[str]) -> list[Mapping[str, Any]]:
    raw = body[key]
    if not isinstance(raw, list) or len(raw) > MAX_SPANS:
        raise ApiError(400, f"{key}: expected a list of at most {MAX_SPANS} objects", field=key)
    out: list[Mapping[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != set(names):
            raise ApiError(
                400, f"{key}[{i}]: expected {{{', '.join(names)}}}, got {item!r:.80}", field=key
            )
        out.append(item)
    return out


class Bookkeeping:
    """The routes' work over one accessor (its store)."""

    def __init__(self, accessor: ModelAccessor):
        self.accessor = accessor

    def take(self, job: str, body: Any) -> dict[str, Any]:
        job = _text(job, "job", MAX_JOB)
        body = _fields(body, ("owner", "now", "interval"))
        owner = _text(body["owner"], "owner", MAX_OWNER)
        now = _number(body["now"], "now", -MAX_TIME, MAX_TIME)
        interval = _number(body["interval"], "interval", 0.0, MAX_INTERVAL)
        schedule = self.accessor.schedule(owner)
        return {"job": job, "taken": schedule.take(job, now, interval, idempotent=True)}

    def failed(self, group: str, body: Any) -> dict[str, Any]:
        group = group_of(group)
        body = _fields(body, ("topic", "partition", "offset", "error", "next_run"))
        message = (
            _topic(body["topic"], "topic"),
            _integer(body["partition"], "partition", MAX_PARTITION),
            _integer(body["offset"], "offset", MAX_OFFSET),
        )
        error = _text(body["error"], "error")
        next_run = _number(body["next_run"], "next_run", -MAX_TIME, MAX_TIME)
        attempts = self.accessor.event_attempts(group)
        return {"attempts": attempts.failed(message, error, next_run, idempotent=True)}

    def load(self, group: str, body: Any) -> dict[str, Any]:
        group = group_of(group)
        body = _fields(body, ("spans",))
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for item in _entries(body, "spans", ("topic", "partition", "first", "last")):
            where = (
                _topic(item["topic"], "spans"),
                _integer(item["partition"], "spans: partition", MAX_PARTITION, "spans"),
            )
            spans[where] = (
                _integer(item["first"], "spans: first", MAX_OFFSET, "spans"),
                _integer(item["last"], "spans: last", MAX_OFFSET, "spans"),
            )
        found = self.accessor.event_attempts(group).load(spans)
        return {
            "attempts": [
                {
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "attempts": a.attempts,
                    "last_error": a.last_error,
                    "next_run": a.next_run,
                }
                for (topic, partition, offset), a in sorted(found.items())
            ]
        }

    def forget(self, group: str, body: Any) -> dict[str, Any]:
        group = group_of(group)
        body = _fields(body, ("committed",))
        committed: dict[tuple[str, int], int] = {}
        for item in _entries(body, "committed", ("topic", "partition", "offset")):
            where = (
                _topic(item["topic"], "committed"),
                _integer(item["partition"], "committed: partition", MAX_PARTITION, "committed"),
            )
            committed[where] = _integer(
                item["offset"], "committed: offset", MAX_OFFSET, "committed"
            )
        self.accessor.event_attempts(group).forget(committed)
        return {"group": group}
