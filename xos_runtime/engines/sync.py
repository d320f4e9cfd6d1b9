"""The sync engine: pushes pending objects to backends through sync steps, in dependency order.

One pass = a sync phase then a deletion phase. Each phase:

1. asks every step for its pending objects (`fetch_pending`) and drops those still backing
   off (their `next_run` is ahead and they have not changed since they failed);
2. builds the object DAG from actual links (`dag.py`), dependencies first for syncs and
   dependents first for deletions;
3. starts every object whose dependencies succeeded on a bounded worker pool (per-step
   `concurrency` respected), with no barrier between unrelated objects;
4. writes each outcome back in batches (contract section 5); a failure holds back only the
   objects that depend on it, transitively.

Between passes the engine sleeps until the store publishes a change, the earliest backoff
expires, or the fallback poll interval passes.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import attrs
import networkx as nx

from xos_runtime.config import BackoffSettings
from xos_runtime.engines.backoff import (
    Backoff,
    data_version,
    failure_register,
    is_ready,
    read_register,
    success_register,
)
from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.dag import Key, LinkPlan, dependencies, reverse_edges
from xos_runtime.engines.outcome import Outcome, classify
from xos_runtime.engines.pool import WorkerPool
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.writer import OutcomeWriter
from xos_runtime.steps import SyncStep
from xos_runtime.store import Claims, ModelAccessor, ModelObject, acting_as

OutcomeHook = Callable[[Any, Any, Outcome], None]


@attrs.frozen
class SyncOptions:
    """How the engine runs; built from the config's `sync` section."""

    #: Size of the global worker pool.
    workers: int = 8
    #: Default seconds one call may take (a step's `timeout` wins); None = no limit.
    timeout: float | None = None
    #: Longest sleep between passes when no change notification arrives.
    poll_interval: float = 5.0
    #: Retry delays after failures.
    backoff: Backoff = attrs.field(factory=BackoffSettings)
    #: Outcomes written per transaction at most.
    batch_size: int = 500
    #: Claim objects before syncing them (several processes on one store); see `Claims`.
    claims: bool = False
    #: Seconds a claim lives unless renewed.
    claim_ttl: float = 60.0


@attrs.define(eq=False)
class _Item:
    key: Key
    obj: ModelObject
    steps: list[type[SyncStep]]
    deps_left: int = 0
    dependents: list[Key] = attrs.field(factory=list)
    state: str = "pending"  # pending | waiting | running | done | failed | blocked
    #: The data version when fetched: what a success enacts. Read before the step runs, so
    #: an edit that lands during the call (even the step's own save) leaves it pending.
    version: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.version = data_version(self.obj)

    @property
    def step(self) -> type[SyncStep]:
        return self.steps[0]


class SyncEngine(LoopEngine):
    """Runs sync steps over the pending objects of a store (see the module docstring).

    `held_for_policies` names the models whose deleted objects must first get their
    `handle_delete` from the policy engine: their `delete_record` and purge wait for it.
    """

    name = "sync"

    def __init__(
        self,
        accessor: ModelAccessor,
        steps: Sequence[type[SyncStep]],
        graph: nx.DiGraph,
        options: SyncOptions | None = None,
        *,
        held_for_policies: Collection[str] = (),
        on_outcome: OutcomeHook | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        self.options = options or SyncOptions()
        super().__init__(
            accessor,
            workers=self.options.workers,
            poll_interval=self.options.poll_interval,
            clock=clock,
        )
        self.steps = list(steps)
        self.plan = LinkPlan(accessor.models, graph)
        self.held_for_policies = frozenset(held_for_policies)
        self.on_outcome = on_outcome
        self.rand = rand
        self.claims = (
            Claims(accessor.store, "sync", ttl=self.options.claim_ttl)
            if self.options.claims
            else None
        )

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        """One sync phase and one deletion phase. Objects in `exclude` are not attempted."""
        skip = set(exclude)
        report = self.run_phase(deleted=False, exclude=skip)
        if not self.stopping:
            report.merge(self.run_phase(deleted=True, exclude=skip))
        return report

    # -- one phase --------------------------------------------------------------------------

    def _fetch(self, deleted: bool) -> dict[Key, _Item]:
        items: dict[Key, _Item] = {}
        for step_cls in self.steps:
            log = self._log.bind(step=step_cls.__name__)
            step = step_cls(model_accessor=self.accessor, log=log)
            try:
                pending = list(step.fetch_pending(deleted=deleted))
            except Exception:
                # One step's broken query must not stop the others (the original lost the
                # whole pass, both phases, for every step).
                log.exception("fetch_pending failed; its objects wait for the next pass")
                continue
            for obj in pending:
                key = (self.accessor.models.root(obj._meta.name), int(obj.id))
                item = items.get(key)
                if item is None:
                    items[key] = _Item(key, obj, [step_cls])
                elif step_cls not in item.steps:
                    item.steps.append(step_cls)
        return items

    def run_phase(self, *, deleted: bool, exclude: set[Key] | None = None) -> PassReport:
        report = PassReport()
        items = self._fetch(deleted)
        report.fetched = len(items)
        if not items:
            return report
        now = self.clock()
        exclude = exclude or set()
        for item in items.values():
            if deleted and self._awaits_policy(item.obj):
                item.state = "policy"
                report.waiting += 1
                continue
            register = read_register(item.obj.backend_register)
            if item.key in exclude or not is_ready(register, item.version, now):
                item.state = "waiting"
                report.waiting += 1
                if item.key not in exclude:
                    next_run = float(register.get("next_run") or 0) or None
                    if next_run is not None and not register.get("permanent"):
                        report.next_run = (
                            next_run if report.next_run is None else min(report.next_run, next_run)
                        )
        if self.claims is not None:
            self._claim(items, deleted, now)
        try:
            self._dispatch(items, deleted, report)
        finally:
            if self.claims is not None:
                self.claims.release()
        return report

    def _claim(self, items: dict[Key, _Item], deleted: bool, now: float) -> None:
        """Keep only the objects this process holds and that are still to do.

        Objects another process holds wait (and hold their dependents back, unstamped).
        What we hold is read again: another process may have finished it between our fetch
        and our claim, and then it is dropped (its dependents may go on).
        """
        assert self.claims is not None
        candidates = [k for k, item in items.items() if item.state == "pending"]
        held = self.claims.claim(candidates, now)
        for key in candidates:
            if key not in held:
                items[key].state = "claimed"
        rows = self.accessor.load_rows(held)
        for key in held:
            row = rows.get(key)
            item = items[key]
            if row is None or bool(row["deleted"]) != deleted:
                del items[key]  # purged, or deleted or undeleted meanwhile
                continue
            enacted = row["enacted"]
            if not deleted and enacted is not None and enacted >= item.version:
                del items[key]  # done elsewhere since we read it: dependents go on
            elif not is_ready(read_register(row["backend_register"]), item.version, now):
                item.state = "claimed"  # failed elsewhere meanwhile: it holds its dependents

    def _dispatch(self, items: dict[Key, _Item], deleted: bool, report: PassReport) -> None:
        rows = {k: item.obj._row for k, item in items.items()}
        deps = dependencies(rows, self.plan, self.accessor.load_rows)
        if deleted:
            deps = reverse_edges(deps)
        for key, targets in deps.items():
            items[key].deps_left = len(targets)
            for t in targets:
                items[t].dependents.append(key)
        _Dispatch(self, items, deleted, report).run()

    def _awaits_policy(self, obj: ModelObject) -> bool:
        """A deleted object whose policies have not yet handled the deletion."""
        leaf = obj.__dict__.get("leaf_model_name") or obj._meta.name
        if leaf not in self.held_for_policies:
            return False
        return obj.policed is None or (obj.updated is not None and obj.policed < obj.updated)

    # -- calls and writes ---------------------------------------------------------------------

    def call(self, item: _Item, deleted: bool) -> None:
        """Run the steps of one object (in a worker thread)."""
        obj = item.obj
        leaf = obj.__dict__.get("leaf_model_name") or obj._meta.name
        with acting_as("sync"):
            for step_cls in item.steps:
                log = self._log.bind(step=step_cls.__name__, model=leaf, id=obj.id)
                step = step_cls(model_accessor=self.accessor, log=log)
                if deleted:
                    step.delete_record(obj)
                else:
                    step.sync_record(obj)

    def timeout_for(self, item: _Item) -> float | None:
        timeouts = [s.timeout for s in item.steps if s.timeout is not None]
        return max(timeouts) if timeouts else self.options.timeout


class _Dispatch:
    """Runs one phase's DAG on the pool; all bookkeeping happens in the calling thread."""

    def __init__(
        self, engine: SyncEngine, items: dict[Key, _Item], deleted: bool, report: PassReport
    ):
        self.engine = engine
        self.items = items
        self.deleted = deleted
        self.report = report
        self.ready: deque[Key] = deque()
        self.parked: dict[type[SyncStep], deque[Key]] = {}
        self.in_flight: Counter[type[SyncStep]] = Counter()
        self.running = 0
        self.writes = OutcomeWriter(engine.accessor)
        self.after_save: list[_Item] = []
        self.renewed = time.monotonic()

    def run(self) -> None:
        for item in self.items.values():
            if item.state == "waiting":
                self._hold_dependents(item, self._waiting_outcome(item))
            elif item.state in ("policy", "claimed"):
                self._hold_dependents(item, None)
        for key, item in self.items.items():
            if item.state == "pending" and item.deps_left == 0:
                self.ready.append(key)
        pool = self.engine.pool
        pool.new_epoch()
        while self.ready or self.running:
            if self.engine.abandoned:
                break
            self._start_ready()
            if not self.running:
                break
            self._take(pool)
            if self.writes.size >= self.engine.options.batch_size or not self.running:
                self._flush()
        self._flush()
        if self.engine.stopping:
            return  # what did not start stays pending for the next run
        for item in self.items.values():
            if item.state == "pending":
                # Still waiting on dependencies: a cycle among the pending objects.
                self._finish(
                    item,
                    Outcome(
                        "error", "dependency cycle among pending objects", 2, 0.0, self.deleted
                    ),
                )
        self._flush()

    def _start_ready(self) -> None:
        engine = self.engine
        while self.ready and not engine.stopping:
            key = self.ready.popleft()
            item = self.items[key]
            if item.state != "pending":
                continue
            full = next(
                (
                    s
                    for s in item.steps
                    if s.concurrency is not None and self.in_flight[s] >= s.concurrency
                ),
                None,
            )
            if full is not None:  # every step of the object must have room
                self.parked.setdefault(full, deque()).append(key)
                continue
            item.state = "running"
            for step_cls in item.steps:
                self.in_flight[step_cls] += 1
            self.running += 1
            self.report.attempted += 1
            engine.pool.submit(key, self._caller(item), engine.timeout_for(item))

    def _caller(self, item: _Item) -> Callable[[], None]:
        engine, deleted = self.engine, self.deleted
        return lambda: engine.call(item, deleted)

    def _take(self, pool: WorkerPool) -> None:
        claims = self.engine.claims
        if claims is not None and time.monotonic() - self.renewed > claims.ttl / 3:
            claims.renew(self.engine.clock())  # still working: keep our claims alive
            self.renewed = time.monotonic()
        done = pool.next_completion()
        if done is None:
            return
        item = self.items.get(done.key)  # type: ignore[call-overload]
        if item is None or item.state != "running":
            return  # a late result of a call that already timed out
        self.running -= 1
        for step_cls in item.steps:
            self.in_flight[step_cls] -= 1
            parked = self.parked.get(step_cls)
            if parked:
                self.ready.appendleft(parked.popleft())
        outcome = classify(
            done.error, done.timed_out, done.duration, self.deleted, self.engine.timeout_for(item)
        )
        if done.error is not None and outcome.kind == "error":
            log = self.engine._log.bind(step=item.step.__name__, id=item.key[1])
            log.opt(exception=done.error).debug("traceback of the failure below")
            log.warning(
                "{} failed: {}", "delete_record" if self.deleted else "sync_record", outcome.message
            )
        self._finish(item, outcome)

    def _finish(self, item: _Item, outcome: Outcome) -> None:
        engine = self.engine
        now = engine.clock()
        self.report.outcomes[outcome.kind] += 1
        if outcome.ok:
            item.state = "done"
            self.report.succeeded += 1
            if self.deleted:
                self.writes.purge(item.obj)
            else:
                register = success_register(read_register(item.obj.backend_register), now)
                self.writes.update(
                    item.obj,
                    {
                        "enacted": item.version,
                        "backend_status": "OK",
                        "backend_code": 1,
                        "backend_register": json.dumps(register),
                        "backend_need_delete": True,
                    },
                )
                if any(hasattr(s, "after_sync_save") for s in item.steps):
                    self.after_save.append(item)
            for dep in item.dependents:
                dependent = self.items[dep]
                dependent.deps_left -= 1
                if dependent.deps_left == 0 and dependent.state == "pending":
                    self.ready.append(dep)
        else:
            item.state = "failed"
            self.report.failed.add(item.key)
            register = failure_register(
                read_register(item.obj.backend_register),
                kind=outcome.kind,
                now=now,
                version=item.version,
                backoff=engine.options.backoff,
                delay=outcome.retry_at,
                rand=engine.rand,
            )
            nxt = register["next_run"]
            if outcome.kind != "permanent":
                self.report.next_run = (
                    nxt if self.report.next_run is None else min(self.report.next_run, nxt)
                )
            self.writes.update(
                item.obj,
                {
                    "backend_status": outcome.message,
                    "backend_code": outcome.code,
                    "backend_register": json.dumps(register),
                },
            )
            self._hold_dependents(item, outcome)
        engine.report(engine.on_outcome, item.step, item.obj, outcome)

    def _waiting_outcome(self, item: _Item) -> Outcome:
        """What a backing-off object stands for when it holds its dependents back."""
        code = int(item.obj.backend_code or 0)
        return Outcome(
            "error", item.obj.backend_status or "waiting to retry", code, 0.0, self.deleted
        )

    def _hold_dependents(self, failed: _Item, outcome: Outcome | None) -> None:
        """Hold back everything that waits on `failed`, transitively.

        With an outcome the held objects are stamped `Failed due to error in model ...`;
        without one (a deletion waiting for its policies) they just wait, unstamped.
        """
        leaf = failed.obj.__dict__.get("leaf_model_name") or failed.obj._meta.name
        todo = list(failed.dependents)
        while todo:
            item = self.items[todo.pop()]
            if item.state not in ("pending",):
                continue
            item.state = "blocked"
            todo.extend(item.dependents)
            if outcome is None:
                continue
            text = f"Failed due to error in model {leaf} id {failed.key[1]}: {outcome.message}"
            code = outcome.code
            self.report.blocked.add(item.key)
            self.report.outcomes["blocked"] += 1
            if item.obj.backend_status != text or item.obj.backend_code != code:
                self.writes.update(item.obj, {"backend_status": text, "backend_code": code})
            blocked = Outcome("blocked", text, code, 0.0, self.deleted)
            self.engine.report(self.engine.on_outcome, item.step, item.obj, blocked)

    def _flush(self) -> None:
        self.writes.flush()
        if self.after_save:
            items, self.after_save = self.after_save, []
            for item in items:
                for step_cls in item.steps:
                    hook = getattr(step_cls, "after_sync_save", None)
                    if hook is None:
                        continue
                    step = step_cls(
                        model_accessor=self.engine.accessor,
                        log=self.engine._log.bind(step=step_cls.__name__),
                    )
                    try:
                        with acting_as("sync"):
                            step.after_sync_save(item.obj)  # type: ignore[attr-defined]
                    except Exception:
                        # The success is already stored; a failing follow-up must not undo it.
                        self.engine._log.bind(step=step_cls.__name__, id=item.key[1]).exception(
                            "after_sync_save failed"
                        )
