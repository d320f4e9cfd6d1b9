"""Handler methods a plugin class must have, and names that look like typos of them.

A `SyncStep` without its own `sync_record` inherits the base class's, which does nothing:
the step "succeeds" on every object and marks it OK. A misspelled `sync_recrod` therefore
passed `check` and synced nothing. So a plugin class must define its kind's handler itself
or inherit it from a class that is not one of xos-runtime's own bases (a compatibility
layer's base class counts), and a method name within two edits of a handler name that the
class lacks is named as the likely typo.
"""

from __future__ import annotations

from xos_runtime import steps
from xos_runtime.steps import EventStep, ModelPolicy, PullStep, SyncStep

__all__ = ["handler_problems"]

#: Handlers the runtime calls, by kind; for a policy, any one of them is enough.
_REQUIRED: dict[type, tuple[str, ...]] = {
    SyncStep: ("sync_record",),
    EventStep: ("process_event",),
    PullStep: ("pull_records",),
    ModelPolicy: ("handle_create", "handle_update", "handle_delete"),
}

#: Every handler name a typo may be near.
_HANDLERS = (
    "sync_record",
    "delete_record",
    "pull_records",
    "process_event",
    "handle_create",
    "handle_update",
    "handle_delete",
)


def _edits(a: str, b: str, limit: int = 2) -> int:
    """Levenshtein distance of `a` and `b`, or `limit + 1` once it is known to exceed it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _user_methods(cls: type) -> set[str]:
    """Names of the functions `cls` defines or inherits from classes not of xos-runtime."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or klass.__module__ == steps.__name__:
            continue
        names |= {
            n
            for n, v in vars(klass).items()
            if callable(v) or isinstance(v, staticmethod | classmethod)
        }
    return names


def handler_problems(cls: type) -> list[str]:
    """What is wrong with the handler methods of plugin class `cls` (empty when nothing)."""
    base = next((b for b in _REQUIRED if issubclass(cls, b)), None)
    if base is None:
        return []
    defined = _user_methods(cls)
    typos = {
        name: handler
        for name in sorted(defined)
        for handler in _HANDLERS
        if name != handler and handler not in defined and _edits(name, handler) <= 2
    }
    problems = [f"defines {name!r}: a typo of {handler!r}?" for name, handler in typos.items()]
    required = _REQUIRED[base]
    if not defined.intersection(required):
        wanted = " or ".join(repr(r) for r in required)
        found = [n for n, h in typos.items() if h in required]
        hint = f" (is {found[0]!r} meant to be it?)" if found else ""
        problems.insert(
            0, f"has no {wanted} method: the {base.__name__} base class's does nothing{hint}"
        )
    return problems
