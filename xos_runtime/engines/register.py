"""Retry bookkeeping kept in `backend_register`: failures, backoff and when to run next.

The register is a JSON object on each row (contract section 5) with at least `failures`,
`exponent`, `next_run`, `last_success` and `last_failure` (epoch seconds, 0 = never). The
runtime adds `version`: the data version (max of `updated` and `changed_by_policy`) that
failed, so that a later change by a user or a policy makes the object ready at once instead of
waiting out its backoff, and `permanent`, set by `PermanentException`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from xos_runtime.engines.retry import Backoff, next_retry


def read_register(text: str | None) -> dict[str, Any]:
    """The register as a dict; anything unreadable counts as an empty register."""
    if not text or text == "{}":  # a new object's (the common case, without a parse)
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def data_version(obj: Any) -> float:
    """The version a sync of `obj` makes current (see `version_of`)."""
    return version_of(obj.updated, obj.changed_by_policy)


def version_of(updated: float | None, changed_by_policy: float | None) -> float:
    """The version a sync makes current: the newest of `updated` and `changed_by_policy`."""
    return max(updated or 0.0, changed_by_policy or 0.0)


def is_ready(register: dict[str, Any], version: float, now: float) -> bool:
    """Whether an object may run now: its backoff is over, or it changed since it failed."""
    failed_version = register.get("version")
    if failed_version is not None and version > float(failed_version):
        return True
    if register.get("permanent"):
        return False
    return float(register.get("next_run") or 0.0) <= now


def success_register(register: dict[str, Any], now: float) -> dict[str, Any]:
    """Success resets the backoff and keeps the history of the last failure."""
    return {
        "failures": 0,
        "exponent": 0,
        "next_run": 0,
        "last_success": now,
        "last_failure": float(register.get("last_failure") or 0.0),
    }


def success_text(register: dict[str, Any], now: float) -> str:
    """`success_register` as the text stored in `backend_register`, written once per
    synced object (formatted directly: the same JSON as `json.dumps` in a fifth of its time;
    the timestamps are finite floats, whose `repr` is JSON)."""
    r = success_register(register, now)
    return (
        f'{{"failures": 0, "exponent": 0, "next_run": 0, '
        f'"last_success": {float(r["last_success"])!r}, '
        f'"last_failure": {float(r["last_failure"])!r}}}'
    )


def failure_register(
    register: dict[str, Any],
    *,
    kind: str,
    now: float,
    version: float,
    backoff: Backoff,
    delay: float | None = None,
    rand: Callable[[], float] = random.random,
) -> dict[str, Any]:
    """The register after a failure of `kind` (deferred, innocuous, permanent, error, timeout).

    The exponent counts the failures that grow the backoff, and `next_run` is when the retry
    rule (`retry.py`) says the object runs again; `delay` is a deferral's own wait.
    """
    retry = next_retry(
        backoff,
        int(register.get("exponent") or 0),
        now=now,
        deferred=kind == "deferred",
        delay=delay,
        rand=rand,
    )
    out = {
        "failures": int(register.get("failures") or 0) + 1,
        "exponent": retry.failures,
        "next_run": retry.at,
        "last_success": float(register.get("last_success") or 0.0),
        "last_failure": now,
        "version": version,
    }
    if kind == "permanent":
        out["permanent"] = True
    return out
