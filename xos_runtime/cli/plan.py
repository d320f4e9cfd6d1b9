"""`xos-runtime plan`: what the next pass would do, changing nothing.

The plan itself is the engines' (`engines.make_plan`); this module prints it, for people
(waves, held back, backing off, policies, a count line) or as one JSON document.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from xos_runtime.cli.common import load_runtime, local_time, print_json
from xos_runtime.engines import Plan, make_plan

__all__ = ["format_ids", "format_plan", "plan"]

#: Runs of ids shown before a long list is cut (`1-40, 42, 50-61, ... (1,204 in all)`).
MAX_RUNS = 8


def plan(args: argparse.Namespace) -> int:
    runtime = load_runtime(args)
    try:
        found = make_plan(runtime, runtime.clock())
    finally:
        runtime.close()
    if args.json:
        print_json(found.to_dict())
    else:
        for line in format_plan(found):
            print(line)
    return 0


def format_ids(ids: Sequence[int]) -> str:
    """`1, 2, 3, 7` as `1-3, 7`; a long list cut after `MAX_RUNS` runs, with its size."""
    runs: list[str] = []
    ordered = sorted(ids)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            runs.append(f"{ordered[start]}-{ordered[end]}")
        else:
            runs.extend(str(i) for i in ordered[start : end + 1])
        start = end + 1
    if len(runs) > MAX_RUNS:
        return ", ".join(runs[:MAX_RUNS]) + f", ... ({len(ordered):,} in all)"
    return ", ".join(runs)


def _seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}min"
    return f"{s / 3600:.1f}h"


def format_plan(found: Plan) -> list[str]:
    """The lines `plan` prints (without `--json`)."""
    if found.empty:
        return ["nothing to do: no object to sync, delete or police, and none waiting"]
    lines: list[str] = []
    for wave in found.waves:
        label = f"wave {wave.number}:"
        for i, group in enumerate(wave.groups):
            line = f"{label if i == 0 else '':8} {wave.phase} {group.model} {format_ids(group.ids)}"
            if group.retries:
                line += f" (retry: {format_ids(group.retries)})"
            lines.append(line)
    if found.held_back:
        lines.append("held back:")
        lines.extend(f"  {line}" for line in _held_lines(found))
    if found.backing_off:
        lines.append("backing off:")
        for w in found.backing_off:
            until = w.until or 0.0
            what = f"{w.model} {w.id}" + (" (delete)" if w.phase == "delete" else "")
            lines.append(
                f"  {what} until {local_time(until)} (in {_seconds(max(0.0, until - found.now))}):"
                f" {w.state.replace('_', ' ')}, {w.failures} failure(s): {w.message}"
            )
    if found.not_retried:
        lines.append("not retried until they change:")
        for w in found.not_retried:
            what = f"{w.model} {w.id}" + (" (delete)" if w.phase == "delete" else "")
            lines.append(f"  {what}: {w.state}: {w.message}")
    if found.policies:
        lines.append("policies:")
        lines.extend(f"  {line}" for line in _policy_lines(found))
    c = found.counts
    parts = [f"{c['sync']} to sync", f"{c['delete']} to delete", f"{c['held_back']} held back"]
    parts += [f"{c['backing_off']} backing off"]
    if c["not_retried"]:
        parts.append(f"{c['not_retried']} not retried")
    parts.append(f"{c['policies']} to police")
    lines.append(f"plan: {', '.join(parts)} (in {len(found.waves)} wave(s))")
    return lines


def _held_lines(found: Plan) -> Iterable[str]:
    """`User 4, 5 held back by Site 3 (error: ...)`: one line per root cause and model."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for h in found.held_back:
        key = (h.phase, h.by, h.model, h.cause, h.message)
        groups.setdefault(key, []).append(h.id)
    for (phase, by, model, cause, message), ids in groups.items():
        what = f"{model} {format_ids(ids)}" + (" (delete)" if phase == "delete" else "")
        if by is None:  # waits for its policies, or in a cycle: its own cause
            yield f"{what}: {message}"
        else:
            assert isinstance(by, tuple)
            yield f"{what} held back by {by[0]} {by[1]} ({str(cause).replace('_', ' ')}: {message})"


def _policy_lines(found: Plan) -> Iterable[str]:
    """`SitePolicy: create Site 4; update Site 1, 2`: one line per policy."""
    by_policy: dict[str, dict[tuple[str, str], list[int]]] = {}
    for run in found.policies:
        for name in run.policies or ("no handler, only marked policed",):
            by_policy.setdefault(name, {}).setdefault((run.action, run.model), []).append(run.id)
    for name, work in by_policy.items():
        parts = [f"{action} {model} {format_ids(ids)}" for (action, model), ids in work.items()]
        yield f"{name}: {'; '.join(parts)}"
    failed = [r for r in found.policies if r.last_error]
    for r in failed:
        yield f"{r.model} {r.id} failed its last policy run: {r.last_error}"
