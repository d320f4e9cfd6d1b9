"""What the next pass would do, changing nothing: the record behind `xos-runtime plan`.

The plan asks the engines themselves, built as `run` builds them (`builtin.sync_engine`,
`builtin.policy_engine`) but without a lease, so that they claim nothing:

* the sync engine reads each phase's pending objects and their DAG as a pass reads them
  (`SyncEngine.read_pending`: every step's `fetch_pending` in one snapshot of the store, the links
  of `dag.py`, dependents first for deletions);
* an object is not ready when its deletion waits for its policies (`awaits_policy`) or its
  backoff is not over (`register.is_ready`); what it holds back are its dependents,
  transitively, walked as the pass walks them (`_Dispatch.run` then `_hold_dependents`), so
  that each held object names the same root cause a pass would stamp on it;
* the policy engine lists what it would police (`pending`) and with which policies
  (`policies_for`, those that have the handler).

Nothing is called (no `sync_record`, `delete_record` or `handle_*`), claimed or written.

A wave is a depth in the DAG of the objects that would run: wave 1 holds those with no
dependency among them, wave 2 those whose dependencies are all in wave 1, and so on; the
deletion phase's waves follow the sync phase's, as the pass runs them. Within a wave the
engine starts objects as workers free up, in no fixed order.

What a plan cannot know is what lives only in a running process: the objects it holds
(claims; `status` lists them), calls it abandoned after a timeout, and the backoff of failed
policy handlers (kept in memory: a failed handler is listed with its last error). Policies
run before the sync steps in a pass, and their changes may add work this plan does not show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from xos_runtime.engines.builtin import EngineHost, policy_engine, sync_engine
from xos_runtime.engines.outcome import BackendCode
from xos_runtime.engines.policy import PolicyEngine
from xos_runtime.engines.register import is_ready, read_register
from xos_runtime.engines.status import failure_state
from xos_runtime.engines.sync.engine import SyncEngine
from xos_runtime.models import deletion_order, sync_order
from xos_runtime.store import Key

__all__ = ["HeldBack", "Plan", "PlanGroup", "PolicyRun", "Waiting", "Wave", "make_plan"]

#: The cause of a deletion that waits for its policies' `handle_delete`.
POLICIES = "policies"
#: The cause of objects left pending by a dependency cycle among them.
CYCLE = "cycle"
#: The message of a deletion that waits for its policies.
WAITS_FOR_POLICIES = "its deletion waits for its policies' handle_delete"


@attrs.frozen
class PlanGroup:
    """The objects of one model in one wave."""

    model: str
    ids: tuple[int, ...]
    #: Of them, objects that failed before and run again (backoff over, or changed since).
    retries: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ids": list(self.ids), "retries": list(self.retries)}


@attrs.frozen
class Wave:
    """Objects whose dependencies are all in earlier waves (sync phase, then deletions)."""

    number: int
    phase: str  # sync | delete
    groups: tuple[PlanGroup, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "wave": self.number,
            "phase": self.phase,
            "objects": [g.to_dict() for g in self.groups],
        }


@attrs.frozen
class HeldBack:
    """An object the pass would not start: `by` (its root cause) is not ready, or (`by`
    None) the object itself waits for its policies (`policies`) or is in a cycle."""

    model: str
    id: int
    phase: str
    by: tuple[str, int] | None
    #: What the root cause waits for: error | deferred | backing_off | policies | cycle.
    cause: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        by = {"model": self.by[0], "id": self.by[1]} if self.by is not None else None
        return {
            "model": self.model,
            "id": self.id,
            "phase": self.phase,
            "by": by,
            "cause": self.cause,
            "message": self.message,
        }


@attrs.frozen
class Waiting:
    """An object that failed and is not retried in this pass: backing off until `until`, or
    (`until` None) failed permanently, not retried until it changes."""

    model: str
    id: int
    phase: str
    state: str  # error | deferred | backing_off (as `status` names it)
    until: float | None
    failures: int
    message: str

    def to_dict(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "id": self.id,
            "phase": self.phase,
            "state": self.state,
        }
        if self.until is not None:
            out["until"] = self.until
            out["in_seconds"] = round(max(0.0, self.until - now), 3)
        out["failures"] = self.failures
        out["message"] = self.message
        return out


@attrs.frozen
class PolicyRun:
    """One object the policy engine would handle, and the policies whose handler runs."""

    model: str
    id: int
    action: str  # create | update | delete
    policies: tuple[str, ...]
    #: The message of its last failed policy run (a running process may still back off).
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "id": self.id,
            "action": self.action,
            "policies": list(self.policies),
            "last_error": self.last_error,
        }


@attrs.frozen
class Plan:
    """The next pass, as of `now` (epoch seconds)."""

    now: float
    waves: tuple[Wave, ...] = ()
    held_back: tuple[HeldBack, ...] = ()
    backing_off: tuple[Waiting, ...] = ()
    not_retried: tuple[Waiting, ...] = ()
    policies: tuple[PolicyRun, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        def objects(phase: str) -> int:
            return sum(len(g.ids) for w in self.waves if w.phase == phase for g in w.groups)

        return {
            "sync": objects("sync"),
            "delete": objects("delete"),
            "held_back": len(self.held_back),
            "backing_off": len(self.backing_off),
            "not_retried": len(self.not_retried),
            "policies": len(self.policies),
        }

    @property
    def empty(self) -> bool:
        """Nothing to run and nothing waiting."""
        return not any(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `plan --json` (its keys are documented in the README)."""
        return {
            "now": self.now,
            "waves": [w.to_dict() for w in self.waves],
            "held_back": [h.to_dict() for h in self.held_back],
            "backing_off": [w.to_dict(self.now) for w in self.backing_off],
            "not_retried": [w.to_dict(self.now) for w in self.not_retried],
            "policies": [p.to_dict() for p in self.policies],
            "counts": self.counts,
        }


@attrs.define
class _Phase:
    """What one phase of the sync engine would do (before numbering the waves)."""

    levels: list[list[tuple[str, int, bool]]] = attrs.Factory(list)
    held_back: list[HeldBack] = attrs.Factory(list)
    backing_off: list[Waiting] = attrs.Factory(list)
    not_retried: list[Waiting] = attrs.Factory(list)


def make_plan(runtime: EngineHost, now: float) -> Plan:
    """What the built-in policy and sync engines would do in their next pass (module
    docstring), reading the store and changing nothing."""
    policies: list[PolicyRun] = []
    phases: list[tuple[str, _Phase]] = []
    engine = policy_engine(runtime)
    if engine is not None:
        try:
            policies = _policy_runs(engine)
        finally:
            engine.close()
    sync = sync_engine(runtime)
    if sync is not None:
        try:
            phases = [(p, _sync_phase(sync, p == "delete", now)) for p in ("sync", "delete")]
        finally:
            sync.close()
    waves: list[Wave] = []
    orders = {"sync": sync_order(runtime.graph), "delete": deletion_order(runtime.graph)}
    for phase, found in phases:
        rank = {model: i for i, model in enumerate(orders[phase])}
        for level in found.levels:
            waves.append(Wave(len(waves) + 1, phase, _groups(level, rank)))
    return Plan(
        now=now,
        waves=tuple(waves),
        held_back=tuple(h for _, p in phases for h in p.held_back),
        backing_off=tuple(w for _, p in phases for w in p.backing_off),
        not_retried=tuple(w for _, p in phases for w in p.not_retried),
        policies=tuple(policies),
    )


def _groups(
    level: Iterable[tuple[str, int, bool]], rank: Mapping[str, int]
) -> tuple[PlanGroup, ...]:
    by_model: dict[str, list[tuple[int, bool]]] = {}
    for model, oid, retry in level:
        by_model.setdefault(model, []).append((oid, retry))
    return tuple(
        PlanGroup(
            model,
            tuple(sorted(oid for oid, _ in found)),
            tuple(sorted(oid for oid, retry in found if retry)),
        )
        for model, found in sorted(
            by_model.items(), key=lambda kv: (rank.get(kv[0], 1 << 30), kv[0])
        )
    )


def _sync_phase(engine: SyncEngine, deleted: bool, now: float) -> _Phase:
    """One phase: what a pass would start, wave by wave, and what it would not."""
    phase = "delete" if deleted else "sync"
    items = engine.read_pending(deleted)
    out = _Phase()
    # Not ready, as `SyncEngine._run_items` decides it (no overdue calls in a fresh engine).
    state: dict[Key, str] = {}
    for key, item in items.items():
        if deleted and engine.awaits_policy(item.obj):
            state[key] = POLICIES
            out.held_back.append(
                HeldBack(
                    item.obj.leaf_name,
                    key[1],
                    phase,
                    None,
                    POLICIES,
                    WAITS_FOR_POLICIES,
                )
            )
            continue
        register = read_register(item.obj.backend_register)
        if is_ready(register, item.version, now):
            continue
        code = int(item.obj.backend_code or 0)
        label = failure_state(register, code, item.version, now) or "backing_off"
        state[key] = label
        message = str(item.obj.backend_status or "waiting to retry")
        failures = int(register.get("failures") or 0)
        if register.get("permanent"):  # not ready: it has not changed since
            out.not_retried.append(
                Waiting(item.obj.leaf_name, key[1], phase, label, None, failures, message)
            )
        else:
            until = float(register.get("next_run") or 0.0)
            out.backing_off.append(
                Waiting(item.obj.leaf_name, key[1], phase, label, until, failures, message)
            )
    # What each not-ready object holds back, in the order a pass walks them.
    for key, item in items.items():
        cause = state.get(key)
        if cause is None:
            continue
        message = (
            WAITS_FOR_POLICIES
            if cause == POLICIES
            else str(item.obj.backend_status or "waiting to retry")
        )
        todo = list(item.dependents)
        while todo:
            dep = todo.pop()
            if dep in state:
                continue
            state[dep] = "blocked"
            todo.extend(items[dep].dependents)
            out.held_back.append(
                HeldBack(
                    items[dep].obj.leaf_name,
                    dep[1],
                    phase,
                    (item.obj.leaf_name, key[1]),
                    cause,
                    message,
                )
            )
    # The rest, by depth: every dependency of a ready object is ready itself.
    left = {k: it.deps_left for k, it in items.items() if k not in state}
    level = [k for k, n in left.items() if n == 0]
    while level:
        out.levels.append([_entry(items[k]) for k in level])
        after: list[Key] = []
        for key in level:
            del left[key]
            for dep in items[key].dependents:
                if dep in left:
                    left[dep] -= 1
                    if left[dep] == 0:
                        after.append(dep)
        level = after
    for key in left:  # never ready: a pass ends them as a dependency cycle
        out.held_back.append(
            HeldBack(
                items[key].obj.leaf_name,
                key[1],
                phase,
                None,
                CYCLE,
                "dependency cycle among pending objects",
            )
        )
    return out


def _entry(item: Any) -> tuple[str, int, bool]:
    """`(model, id, retry)` of a ready object: a retry failed before."""
    register = read_register(item.obj.backend_register)
    return item.obj.leaf_name, item.key[1], bool(register.get("failures"))


def _policy_runs(engine: PolicyEngine) -> list[PolicyRun]:
    runs: list[PolicyRun] = []
    for obj, action in engine.pending():
        leaf = obj.model_name
        names = tuple(
            p.__name__
            for p in engine.policies_for(leaf)
            if getattr(p, f"handle_{action}", None) is not None
        )
        error = obj.policy_status if int(obj.policy_code or 0) == BackendCode.ERROR else None
        runs.append(PolicyRun(leaf, int(obj.id or 0), action, names, error))
    runs.sort(key=lambda r: (r.model, r.action, r.id))
    return runs
