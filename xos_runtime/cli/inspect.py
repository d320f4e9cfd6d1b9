"""Read-only commands: `check`, `plugins`, `graph`, `status`.

Their arguments are declared in `cli.commands`; this module is imported when one of them
runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from xos_runtime.cli.common import is_core, load_runtime, print_json, settings_for
from xos_runtime.cli.common import local_time as _when
from xos_runtime.engines import collect_status
from xos_runtime.exceptions import XosRuntimeError
from xos_runtime.host import Runtime
from xos_runtime.models import format_graph, sync_order
from xos_runtime.plugins.handlers import handler_problems


def check(args: argparse.Namespace) -> int:
    try:
        runtime = load_runtime(args, dry_run=True, works=True)  # a check changes nothing
    except XosRuntimeError as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    try:
        table = runtime.plugins.table
        kinds: dict[str, int] = {}
        for info in table:
            kinds[info.kind] = kinds.get(info.kind, 0) + 1
        print(f"config: {runtime.settings.source} (name {runtime.settings.name!r})")
        print(f"store: {runtime.settings.accessor.endpoint}")
        print(f"models: {len(runtime.models)} ({', '.join(runtime.models.names())})")
        print("plugins: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"))
        print(f"sync order: {' -> '.join(sync_order(runtime.graph))}")
        for failure in runtime.plugins.failures:
            print(f"warning: skipped: {failure}")
        # Only here, not at every start-up: a step without its handler runs (and does
        # nothing), so it is a finding of `check`, not a reason to refuse `status`.
        problems = [
            f"{info.origin} {problem}"
            for info in table
            if isinstance(info.cls_or_module, type)
            for problem in handler_problems(info.cls_or_module)
        ]
        for problem in problems:
            print(f"check failed: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("check passed")
        return 0
    finally:
        runtime.close()


def _step_models(cls: object) -> str:
    observed = getattr(cls, "observed_model_names", None)
    if callable(observed):
        try:
            return ",".join(observed())
        except Exception:  # a broken `observes` is reported by validation, not here
            return "?"
    name = getattr(cls, "model_name", None)
    return str(name) if name else ""


def plugins(args: argparse.Namespace) -> int:
    runtime = load_runtime(args)
    try:
        rows = [
            {
                "kind": info.kind,
                "name": info.name,
                "target": info.target,
                "models": _step_models(info.cls_or_module),
                "distribution": info.distribution,
                "version": info.version,
                "file": info.file,
            }
            for info in runtime.plugins.table
        ]
        if args.json:
            print_json(rows)
            return 0
        widths = {
            k: max([len(k)] + [len(str(r[k] or "")) for r in rows])
            for k in ("kind", "name", "target", "models")
        }
        header = "  ".join(k.upper().ljust(widths[k]) for k in widths) + "  FROM"
        print(header)
        for r in rows:
            origin = (
                f"{r['distribution']} {r['version'] or ''}".strip()
                if r["distribution"]
                else (r["file"] or "")
            )
            print("  ".join(str(r[k] or "").ljust(widths[k]) for k in widths) + "  " + origin)
        return 0
    finally:
        runtime.close()


def graph(args: argparse.Namespace) -> int:
    runtime = load_runtime(args)
    try:
        print(format_graph(runtime.graph, args.format).rstrip("\n"))
        if args.format == "text":
            order = sync_order(runtime.graph)
            print(f"\nsync order (deletion runs it backwards): {' -> '.join(order)}")
            by_model: dict[str, list[str]] = {}
            for step in runtime.plugins.sync_steps:
                for model in step.observed_model_names():
                    by_model.setdefault(model, []).append(step.__name__)
            if by_model:
                print("sync steps:")
                for model in [m for m in order if m in by_model]:
                    print(f"  {model}: {', '.join(by_model[model])}")
        return 0
    finally:
        runtime.close()


def status(args: argparse.Namespace) -> int:
    settings = settings_for(args, quiet=True)
    if is_core(settings):
        from xos_runtime.store.remote import STATUS_PATH, client_for

        client = client_for(settings)
        try:
            report = client.get(STATUS_PATH)
        finally:
            client.close()
    else:
        why = f"`{args.command}` goes on without it; `run` and `check` stop here"
        runtime = Runtime.load(settings, skip_broken_why=why)
        try:
            report = collect_status(runtime.accessor, runtime.clock()).to_dict()
        finally:
            runtime.close()
    if args.json:
        print_json(report)
    else:
        _print_status(report)
    return 0


def _print_status(report: dict[str, Any]) -> None:
    """`status` for people, from the report's JSON form (local, or a core's)."""
    counts: dict[str, dict[str, int]] = report["models"]
    for model, by_state in counts.items():
        parts = [
            f"{n} {state.replace('_', ' ')}" for state, n in by_state.items() if state != "total"
        ]
        print(f"{model}: {by_state['total']} object(s): {', '.join(parts)}")
    objects: list[dict[str, Any]] = report["objects"]
    if objects:
        print()
    for o in objects:
        label = f"{o['model']} {o['id']}" + (f" {o['name']!r}" if o["name"] else "")
        state = o["state"]
        line = f"{state.replace('_', ' '):12} {label}: {o['backend_status']}"
        if state in ("backing_off", "error", "deferred") and o["failures"]:
            line += f" (failures {o['failures']}, next run {_when(o['next_run'])})"
        if state == "policy_error":
            line = f"{'policy error':12} {label}: {o['policy_status']}"
        print(line)
    if not counts:
        print("no objects")
    processes: list[dict[str, Any]] = report["processes"]
    if processes:
        print()
        print("processes working on this store:")
    for p in processes:
        held = ", ".join(f"{n} {kind} claim(s)" for kind, n in sorted(p["claims"].items()))
        line = f"  {p['host']} pid {p['pid']}"
        line += f" ({p['name']!r}, {p['state']}" if p["name"] else f" ({p['state']}"
        if not p["shares_work"]:
            line += ", sync.claims: false"
        if p["lease_expires"] and p["state"] == "running":
            line += f", lease until {_when(p['lease_expires'])}"
        line += "): " + (held or "no claims")
        if p["abandoned"]:
            line += f", {p['abandoned']} abandoned call(s) still running"
        print(line)
