"""The call log of the `xrt-calllog` plugin, and the invariants the fault tests assert on it.

Every `sync_record`/`delete_record` of every process appends a `start` and an `end` line
(see `tests/fixtures/plugins/xrt-calllog/xrt_calllog/steps.py`). `CallLog.load` pairs them
into `Call`s. A call with no end line is *open*: it is in flight until its process was
SIGKILLed (`killed`: pid -> kill time), exited (`exited`: pid -> exit time), or forever.

Each check returns a list of violations, each one text line that shows the offending calls;
`CallLog.assert_invariants` runs them all and fails with every violation found (the first
20 of each kind), so a failing test says what went wrong, not just that something did.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INF = math.inf
SHOWN = 20  # violations shown per kind


def _natural(key: str) -> tuple[str, int]:
    model, _, oid = key.partition(":")
    return model, int(oid)


@dataclass
class Call:
    call: str
    pid: int
    host: str
    phase: str
    model: str
    id: int
    name: str | None
    version: float | None
    deps: tuple[str, ...]
    start: float
    end: float | None = None
    result: str | None = None
    error: str | None = None
    #: When an open call stopped being in flight (kill or exit time), INF if never.
    stopped: float = INF

    @property
    def key(self) -> str:
        return f"{self.model}:{self.id}"

    @property
    def until(self) -> float:
        """The end of the call's time in flight."""
        return self.end if self.end is not None else self.stopped

    @property
    def ok(self) -> bool:
        return self.result == "ok"


@dataclass
class CallLog:
    calls: list[Call]
    killed: dict[int, float] = field(default_factory=dict)
    exited: dict[int, float] = field(default_factory=dict)
    bad_lines: list[str] = field(default_factory=list)

    # -- loading --------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        killed: Mapping[int, float] | None = None,
        exited: Mapping[int, float] | None = None,
    ) -> CallLog:
        killed = dict(killed or {})
        exited = dict(exited or {})
        calls: dict[str, Call] = {}
        ends: list[dict[str, Any]] = []
        bad: list[str] = []
        text = Path(path).read_text() if Path(path).exists() else ""
        for line in text.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                bad.append(line)
                continue
            if e.get("ev") == "start":
                calls[e["call"]] = Call(
                    call=e["call"],
                    pid=int(e["pid"]),
                    host=str(e.get("host", "")),
                    phase=e["phase"],
                    model=e["model"],
                    id=int(e["id"]),
                    name=e.get("name"),
                    version=e.get("version"),
                    deps=tuple(e.get("deps") or ()),
                    start=float(e["t"]),
                )
            elif e.get("ev") == "end":
                ends.append(e)
        for e in ends:
            c = calls.get(e["call"])
            if c is None:
                bad.append(f"end without start: {e}")
                continue
            c.end, c.result, c.error = float(e["t"]), e.get("result"), e.get("error")
        for c in calls.values():
            if c.end is None:
                c.stopped = killed.get(c.pid, exited.get(c.pid, INF))
        ordered = sorted(calls.values(), key=lambda c: (c.start, c.call))
        return cls(ordered, killed, exited, bad)

    # -- views ----------------------------------------------------------------------------

    @property
    def t0(self) -> float:
        return self.calls[0].start if self.calls else 0.0

    def fmt(self, c: Call) -> str:
        """One call, times relative to the first call of the log."""
        end = (
            f"{c.end - self.t0:.3f} {c.result}"
            if c.end is not None
            else (f"open, killed at {c.stopped - self.t0:.3f}" if c.pid in self.killed else "open")
        )
        where = f"{c.phase} pid {c.pid}@{c.host}"
        return f"{c.key} v{c.version} [{where} {c.start - self.t0:.3f} -> {end}]"

    def by_key(self) -> dict[str, list[Call]]:
        out: dict[str, list[Call]] = defaultdict(list)
        for c in self.calls:
            out[c.key].append(c)
        return out

    def of_pid(self, pid: int) -> list[Call]:
        return [c for c in self.calls if c.pid == pid]

    def open_calls(self, pid: int | None = None, at: float | None = None) -> list[Call]:
        """Calls in flight at time `at` (default: with no end line at all)."""
        out = []
        for c in self.calls:
            if pid is not None and c.pid != pid:
                continue
            if at is None:
                if c.end is None:
                    out.append(c)
            elif c.start <= at < c.until:
                out.append(c)
        return out

    def synced(self) -> set[str]:
        """Keys with at least one successful sync call."""
        return {c.key for c in self.calls if c.phase == "sync" and c.ok}

    # -- invariants -----------------------------------------------------------------------

    def two_in_flight(self) -> list[str]:
        """No object ever has two calls in flight (across every process and phase)."""
        out = []
        for calls in self.by_key().values():
            running: list[Call] = []
            for c in calls:  # sorted by start
                running = [r for r in running if r.until > c.start]
                for r in running:
                    out.append(f"two calls in flight on {c.key}: {self.fmt(r)} and {self.fmt(c)}")
                running.append(c)
        return out

    def order_violations(self) -> list[str]:
        """No dependent starts before a successful call of each of its dependencies ended."""
        ok_ends: dict[str, list[float]] = defaultdict(list)
        for c in self.calls:
            if c.phase == "sync" and c.ok and c.end is not None:
                ok_ends[c.key].append(c.end)
        first_ok = {k: min(v) for k, v in ok_ends.items()}
        by_key = self.by_key()
        out = []
        for c in self.calls:
            if c.phase != "sync":
                continue
            for dep in c.deps:
                done = first_ok.get(dep)
                if done is None or done > c.start:
                    dep_calls = [d for d in by_key.get(dep, []) if d.phase == "sync"]
                    shown = "; ".join(self.fmt(d) for d in dep_calls[:3]) or "never called"
                    out.append(
                        f"{self.fmt(c)} started before its dependency {dep} had a successful "
                        f"call end (dependency: {shown})"
                    )
        return out

    def duplicates(self, workers: int) -> list[str]:
        """Nothing is synced twice, except calls of a SIGKILLed process (in flight at the kill,
        or done but perhaps not yet stored): at most 2 x workers objects per killed process.

        A second call on the same object and version is a duplicate when an earlier call
        succeeded or never ended; a call after failed ones is a retry.
        """
        out = []
        excused: dict[int, set[str]] = defaultdict(set)
        groups: dict[tuple[str, Any], list[Call]] = defaultdict(list)
        for c in self.calls:
            if c.phase == "sync":
                groups[(c.key, c.version)].append(c)
        for (key, _version), calls in groups.items():
            for i, c in enumerate(calls):
                earlier = [e for e in calls[:i] if e.ok or e.end is None]
                if not earlier:
                    continue
                if all(e.pid in self.killed for e in earlier):
                    for e in earlier:
                        excused[e.pid].add(key)
                    continue
                shown = "; ".join(self.fmt(e) for e in earlier)
                out.append(f"{key} synced again: {self.fmt(c)} after {shown}")
        for pid, keys in excused.items():
            if len(keys) > 2 * workers:
                out.append(
                    f"SIGKILLed pid {pid}: {len(keys)} objects synced again after it died, more "
                    f"than 2 x sync.workers = {2 * workers}: {sorted(keys, key=_natural)[:40]}"
                )
        return out

    def missing(self, expected: Iterable[str]) -> list[str]:
        done = self.synced()
        lost = sorted(set(expected) - done, key=_natural)
        return [f"{len(lost)} objects never synced successfully: {lost[:40]}"] if lost else []

    def check(
        self,
        *,
        workers: int,
        expected: Iterable[str] | None = None,
        exactly_once: bool = False,
        order: bool = True,
    ) -> dict[str, list[str]]:
        """Every invariant, by name, with its violations (empty lists when all hold)."""
        found = {
            "two calls in flight": self.two_in_flight(),
            "dependency order": self.order_violations() if order else [],
            "synced twice": self.duplicates(workers),
            "unreadable log lines": list(self.bad_lines),
        }
        if expected is not None:
            found["never synced"] = self.missing(expected)
        if exactly_once:
            counts: dict[str, list[Call]] = defaultdict(list)
            for c in self.calls:
                if c.phase == "sync":
                    counts[c.key].append(c)
            more = sorted((k for k, v in counts.items() if len(v) > 1), key=_natural)
            found["more than one call"] = (
                [f"{len(more)} objects had more than one sync call: {more[:40]}"] if more else []
            )
        return found

    def assert_invariants(self, **kwargs: Any) -> None:
        found = self.check(**kwargs)
        bad = {k: v for k, v in found.items() if v}
        if not bad:
            return
        lines = [f"call log invariants violated ({len(self.calls)} calls):"]
        for kind, items in bad.items():
            lines.append(f"- {kind}: {len(items)}")
            lines.extend(f"    {item}" for item in items[:SHOWN])
            if len(items) > SHOWN:
                lines.append(f"    ... and {len(items) - SHOWN} more")
        raise AssertionError("\n".join(lines))
