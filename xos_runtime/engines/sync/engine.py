"""The sync engine: pushes pending objects to backends through sync steps, in dependency order.

One pass = a sync phase then a deletion phase. Each phase:

1. reads, in one snapshot of the store, every step's pending objects (`fetch_pending`) and
   the rows their links lead to, so that a dependency committed while the pass reads is
   either seen with its dependent or not at all (the dependent then waits too); drops the
   objects still backing off (their `next_run` is ahead and they have not changed since);
2. builds the object DAG from actual links (`dag.py`), dependencies first for syncs and
   dependents first for deletions;
3. starts every object whose dependencies succeeded on a bounded worker pool (per-step
   `concurrency` respected), with no barrier between unrelated objects. With claims on
   (several processes on one store, `claims.py`), it claims ready objects in small batches
   (4 per worker; 32 when it is alone on the store) just before starting them, its own
   share of the pass first, so processes share a pass without trying the same objects; a
   claim skips what another process finished meanwhile; an object another process holds
   waits, with everything that depends on it. Calls in hand plus outcomes not yet stored
   stay under 2 x `sync.workers`. Objects whose steps have been quick (under 1 ms a call on
   average) go to a worker 8 at a time (`WorkerPool.submit_batch`), one hand-over between
   threads for all of them; a slow call of a batch holds up none of the others;
4. writes the outcomes back (contract section 5) when the workers are about to run short
   (every `sync.workers` outcomes while calls take a while, up to twice that when they
   return at once) and at least every 100 ms; claims are released with the next claim (or
   at the end of the pass); a failure holds back only the objects that depend on it,
   transitively.

A call that overruns its timeout is abandoned (`pool.py`): its object is stored as timed out
and is not started again, by this or any process (its claim is kept), until the call returns.

Between passes the engine sleeps until the store publishes a change, the earliest backoff
expires, an abandoned call returns, or the fallback poll interval passes.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import networkx as nx

from xos_runtime.config import SyncSettings
from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.longlived import long_lived
from xos_runtime.engines.outcome import BackendCode, Outcome, classify, log_failure
from xos_runtime.engines.pool import Completion, WorkerPool
from xos_runtime.engines.register import (
    data_version,
    failure_register,
    is_ready,
    read_register,
    success_text,
    version_of,
)
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.sink import OutcomeSink
from xos_runtime.engines.steplog import lazy_log
from xos_runtime.engines.sync.dag import LinkPlan, dependencies, reverse_edges
from xos_runtime.engines.writer import OutcomeWriter
from xos_runtime.steps import SyncStep
from xos_runtime.store import (
    ClaimRequest,
    ClaimResult,
    Key,
    Lease,
    ModelAccessor,
    ModelObject,
    StatusRestore,
    acting_as,
    retrying,
    transient,
)

#: Seconds between looks for gone processes during a pass that waits on their objects.
REAP_EVERY = 0.5

#: Objects claimed at a time, per worker, by a process alone on its store (4 per worker
#: when it has company).
ALONE_BATCH = 32

#: Columns a claim re-reads to learn whether another process dealt with the object meanwhile.
_RECHECK = ("id", "deleted", "enacted", "updated", "changed_by_policy", "backend_register")

#: Appended to the status of an object whose timed-out call is still running.
STILL_RUNNING = "; the call has not returned yet"


#: Longest time (seconds) a finished outcome waits before it is written.
FLUSH_INTERVAL = 0.1

#: Objects one worker calls in turn when their steps are quick (`WorkerPool.submit_batch`).
CHUNK = 8
#: A call this fast on average (seconds) is quick: its objects go to the workers in batches.
QUICK = 0.001


def loss_bound(settings: SyncSettings) -> int:
    """Calls in hand plus finished outcomes not yet stored: at most 2 x `sync.workers`, all a
    kill -9 can lose."""
    return 2 * settings.workers


@attrs.define(eq=False)
class _Item:
    key: Key
    obj: ModelObject
    steps: tuple[type[SyncStep], ...]
    deps_left: int = 0
    #: Made on the first dependent (most objects have none: a list each would cost memory).
    dependents: list[Key] | tuple[()] = ()
    #: pending | waiting | policy | overdue | claimed | running | done | failed | blocked
    state: str = "pending"
    #: The data version when fetched: what a success enacts. Read before the step runs, so
    #: an edit that lands during the call (even the step's own save) leaves it pending.
    version: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.version = data_version(self.obj)

    @property
    def step(self) -> type[SyncStep]:
        return self.steps[0]


class _LinkRows(Mapping[Key, Mapping[str, Any]]):
    """The pending rows as `dependencies` reads them, by key, without a dict of its own (a
    pass holds it beside every object): the object's own columns when it was read as its
    leaf model, else the link columns kept from its row."""

    def __init__(self, items: dict[Key, _Item], sub_rows: dict[Key, Mapping[str, Any]]):
        self._items = items
        self._sub_rows = sub_rows

    def __getitem__(self, key: Key) -> Mapping[str, Any]:
        row = self._sub_rows.get(key)
        return self._items[key].obj.column_values if row is None else row

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Key]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@attrs.frozen
class _Traits:
    """Of a set of steps: the timeout of a call, whether a step limits its concurrency, and
    whether a step has an `after_sync_save`."""

    timeout: float | None
    limited: bool
    after_save: bool

    @property
    def chunkable(self) -> bool:
        """Whether objects of these steps may go to the workers in batches (when quick):
        none of their calls has to wait for a concurrency limit."""
        return not self.limited


@attrs.frozen
class _Overdue:
    """A call that timed out and still runs: its object waits until it returns."""

    step: type[SyncStep]
    message: str


def _version(row: Mapping[str, Any]) -> float:
    return version_of(row["updated"], row["changed_by_policy"])


def _share_of(key: Key, company: int) -> int:
    """Which of `company` processes starts with `key` in a pass (a stable spread of ids)."""
    return (key[1] * 2654435761 + zlib.crc32(key[0].encode())) % 2**32 % company


class SyncEngine(LoopEngine):
    """Runs sync steps over the pending objects of a store (see the module docstring).

    `held_for_policies` names the models whose deleted objects must first get their
    `handle_delete` from the policy engine: their `delete_record` and purge wait for it.
    `lease` is this process's registration on the store (shared with the other engines):
    given, the engine claims the objects it syncs (several processes on one store, `Claims`).
    """

    name = "sync"

    def __init__(
        self,
        accessor: ModelAccessor,
        steps: Sequence[type[SyncStep]],
        graph: nx.DiGraph,
        settings: SyncSettings | None = None,
        *,
        held_for_policies: Collection[str] = (),
        outcomes: OutcomeSink | None = None,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        self.settings = settings or SyncSettings()
        super().__init__(
            accessor,
            workers=self.settings.workers,
            poll_interval=self.settings.poll_interval,
            clock=clock,
            max_abandoned=self.settings.max_abandoned,
        )
        self.steps = list(steps)
        self.plan = LinkPlan(accessor.models, graph)
        self.held_for_policies = frozenset(held_for_policies)
        self.on_outcome = outcomes.sync if outcomes is not None else None
        self.rand = rand
        self.claims = lease.claims("sync") if lease is not None else None
        #: Calls that timed out and have not returned, by object.
        self.overdue: dict[Key, _Overdue] = {}
        self._returned: list[Key] = []
        self._returned_lock = threading.Lock()
        self._traits: dict[tuple[type[SyncStep], ...], _Traits] = {}
        #: Mean call duration (seconds, a moving average) of each set of steps.
        self.durations: dict[tuple[type[SyncStep], ...], float] = {}

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        """One sync phase and one deletion phase. Objects in `exclude` are not attempted."""
        skip = set(exclude)
        if self.claims is not None:
            self.claims.lease.start_heartbeat()
            self.claims.lease.reap(["sync"])  # a gone process's objects are ours to take
        report = self.run_phase(deleted=False, exclude=skip)
        if not self.stopping:
            report.merge(self.run_phase(deleted=True, exclude=skip))
        return report

    # -- abandoned calls ----------------------------------------------------------------------

    def call_returned(self, done: Completion) -> None:
        with self._returned_lock:
            self._returned.append(done.key)  # type: ignore[arg-type]
        super().call_returned(done)

    def quick(self, steps: tuple[type[SyncStep], ...]) -> bool:
        """Whether calls of these steps have been quick (none seen yet: not known to be)."""
        mean = self.durations.get(steps)
        return mean is not None and mean < QUICK

    def took(self, steps: tuple[type[SyncStep], ...], duration: float) -> None:
        mean = self.durations.get(steps)
        self.durations[steps] = duration if mean is None else mean + (duration - mean) * 0.1

    def settle_returned(self) -> None:
        """Let objects whose abandoned call returned run again (claims, status text)."""
        with self._returned_lock:
            keys, self._returned = self._returned, []
        if not keys:
            return
        done = {k: self.overdue.pop(k) for k in keys if k in self.overdue}
        if not done:
            return

        restore = [StatusRestore(k, o.message + STILL_RUNNING, o.message) for k, o in done.items()]
        release = sorted(done) if self.claims is not None else []

        def write() -> None:
            OutcomeWriter(self.accessor).flush(self.claims, release=release, restore=restore)

        retrying(write, what="releasing returned calls", stopping=lambda: self.stopping)

    # -- one phase --------------------------------------------------------------------------

    def _fetch(self, deleted: bool) -> tuple[dict[Key, _Item], dict[Key, Mapping[str, Any]]]:
        """The pending objects of every step; and, of the objects read through a base of
        their model, what their links are resolved from (the whole rows are dropped as they
        are read: a pass keeps many objects alive)."""
        items: dict[Key, _Item] = {}
        sub_rows: dict[Key, Mapping[str, Any]] = {}
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
            only = (step_cls,)  # shared by the objects of this step alone
            for obj in pending:
                key = obj.store_key
                item = items.get(key)
                if item is None:
                    items[key] = _Item(key, obj, only)
                    if obj.leaf_name != obj.model_name:
                        sub_rows[key] = self.plan.slim(obj.fetched_row)
                    obj.drop_row()
                elif step_cls not in item.steps:
                    item.steps = (*item.steps, step_cls)
        return items, sub_rows

    def read_pending(self, deleted: bool) -> dict[Key, _Item]:
        """The pending objects and their dependencies, all from one snapshot of the store
        (read by a pass, and by `plan`)."""
        with self.accessor.snapshot():
            items, sub_rows = self._fetch(deleted)
            if not items:
                return items
            deps: Mapping[Key, Collection[Key]] = dependencies(
                _LinkRows(items, sub_rows), self.plan, self.accessor.load_rows
            )
        del sub_rows
        if deleted:
            deps = reverse_edges(deps)
        for key, targets in deps.items():
            items[key].deps_left = len(targets)
            for t in targets:
                target = items[t]
                if target.dependents:
                    target.dependents.append(key)
                else:
                    target.dependents = [key]
        return items

    def run_phase(self, *, deleted: bool, exclude: set[Key] | None = None) -> PassReport:
        self.settle_returned()
        with long_lived() as keep:
            items = self.read_pending(deleted)
            keep()  # the pass's objects live until it ends
            return self._run_items(items, deleted, exclude)

    def _run_items(
        self, items: dict[Key, _Item], deleted: bool, exclude: set[Key] | None
    ) -> PassReport:
        report = PassReport()
        report.fetched = len(items)
        if not items:
            return report
        now = self.clock()
        exclude = exclude or set()
        for item in items.values():
            if deleted and self.awaits_policy(item.obj):
                item.state = "policy"
                report.waiting += 1
                continue
            if item.key in self.overdue:
                item.state = "overdue"
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
        _Dispatch(self, items, deleted, report).run()
        return report

    def awaits_policy(self, obj: ModelObject) -> bool:
        """A deleted object whose policies have not yet handled the deletion."""
        if obj.leaf_name not in self.held_for_policies:
            return False
        return obj.policed is None or (obj.updated is not None and obj.policed < obj.updated)

    # -- calls ---------------------------------------------------------------------------------

    def call(self, item: _Item, deleted: bool) -> None:
        """Run the steps of one object (in a worker thread)."""
        obj = item.obj
        leaf = obj.leaf_name
        with acting_as("sync"):
            for step_cls in item.steps:
                log = lazy_log(self._log, step=step_cls.__name__, model=leaf, id=obj.id)
                step = step_cls(model_accessor=self.accessor, log=log)
                if deleted:
                    step.delete_record(obj)
                else:
                    step.sync_record(obj)

    def timeout_for(self, item: _Item) -> float | None:
        return self.traits(item.steps).timeout

    def traits(self, steps: tuple[type[SyncStep], ...]) -> _Traits:
        """What the dispatcher asks of an object's steps on every call, found once per set of
        steps (most objects share one)."""
        found = self._traits.get(steps)
        if found is None:
            timeouts = [s.timeout for s in steps if s.timeout is not None]
            found = self._traits[steps] = _Traits(
                timeout=max(timeouts) if timeouts else self.settings.timeout,
                limited=any(s.concurrency is not None for s in steps),
                after_save=any(hasattr(s, "after_sync_save") for s in steps),
            )
        return found


class _Dispatch:
    """Runs one phase's DAG on the pool; all bookkeeping happens in the calling thread."""

    def __init__(
        self, engine: SyncEngine, items: dict[Key, _Item], deleted: bool, report: PassReport
    ):
        self.engine = engine
        self.claims = engine.claims
        self.items = items
        self.deleted = deleted
        self.report = report
        #: Dependencies met; with claims, not claimed yet: this process's share of the pass
        #: and the dependents of what it finished first, then (`later`) the other processes'
        #: share, which they are likely to have done by the time this process gets to it.
        self.ready: deque[Key] = deque()
        self.later: deque[Key] = deque()
        #: Ready and (with claims) held by this process: to start as workers free up.
        self.startable: deque[Key] = deque()
        self.parked: dict[type[SyncStep], deque[Key]] = {}
        self.in_flight: Counter[type[SyncStep]] = Counter()
        self.running = 0
        self.writes = OutcomeWriter(engine.accessor)
        #: Calls finished (outcome decided) since the last stored flush.
        self.unstored = 0
        #: Succeeded objects whose steps have an `after_sync_save`, run after the next write.
        self.after_save: list[tuple[tuple[type[SyncStep], ...], ModelObject]] = []
        #: Claims this pass took and has not released.
        self.mine: set[Key] = set()
        #: Claims to release, and claims of timed-out calls to keep, at the next flush.
        self.to_release: list[Key] = []
        self.to_keep: list[Key] = []
        self.unflushed_since: float | None = None
        #: Set when a process that held objects of this pass is gone and its claims were
        #: taken over: the pass starts nothing more, and the next one begins at once.
        self.rescan = False
        self.reaped_at = time.monotonic()
        #: Objects in hand (running or claimed to start) after a claim: a small multiple of
        #: the workers, so that several processes share a pass (set in `run`).
        self.claim_target = 4 * engine.settings.workers

    def run(self) -> None:
        for item in self.items.values():
            if item.state in ("waiting", "overdue"):
                self._hold_dependents(item, self._waiting_outcome(item))
            elif item.state == "policy":
                self._hold_dependents(item, None)
        first = [k for k, it in self.items.items() if it.state == "pending" and it.deps_left == 0]
        if self.claims is not None:
            # Processes that read the same pending set would otherwise all try the same
            # objects first: each starts with its own share, in a random order.
            rank, company = self.claims.lease.share()
            if company == 1:
                # Alone at the start of the pass: fewer, larger claims (a process that
                # starts now waits at most for this batch, then the next pass shares),
                # in store order, so that each write touches few pages.
                self.claim_target = ALONE_BATCH * self.engine.settings.workers
                first.sort()
            else:
                random.shuffle(first)
            for key in first:
                mine = company == 1 or _share_of(key, company) == rank
                (self.ready if mine else self.later).append(key)
        else:
            self.ready.extend(first)
        pool = self.engine.pool
        pool.new_epoch()
        total = sum(1 for it in self.items.values() if it.state == "pending")
        meter = self.engine.meter("delete" if self.deleted else "sync", total)
        try:
            while not self.engine.abandoned:
                if self.engine._returned:
                    self._flush()
                    self.engine.settle_returned()
                self._look_for_gone_holders()
                if not self.rescan:
                    self._top_up()
                    self._start_ready()
                if not self.running:
                    break
                self._take(pool)
                self._maybe_flush()
                if meter is not None and meter.due():
                    meter.report(self._settled(), self.running, self._failed())
        except BaseException:
            self._interrupted(pool)
            raise
        finally:
            self._end()
            if meter is not None:
                meter.finish(self._settled(), self._failed())
        if self.engine.stopping or self.engine.abandoned or self.rescan:
            return  # what did not start stays pending for the next pass
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

    def _failed(self) -> int:
        return len(self.report.failed) + len(self.report.blocked)

    def _settled(self) -> int:
        """Objects of the pass dealt with: synced, failed, held back, or left to another
        process."""
        return self.report.succeeded + self._failed() + self.report.held_elsewhere

    def _interrupted(self, pool: WorkerPool) -> None:
        """Leave with calls running (a bug, or an interrupt), without losing track of them.

        Calls not started yet are dropped and their objects stay pending; calls that finished
        meanwhile are stored; calls still running keep their claims, and their objects wait
        until they return, as after a timeout (another process must not start them).
        """
        pool.new_epoch()  # queued calls of this pass will not start
        abandoned = set(pool.abandon_running())
        while True:
            try:
                done = pool.completions.get_nowait()
            except queue.Empty:
                break
            item = self.items.get(done.key)  # type: ignore[call-overload]
            if item is not None and item.state == "running" and done.key not in abandoned:
                self.running -= 1
                outcome = classify(done.error, done.timed_out, done.duration, self.deleted, None)
                self._finish(item, outcome)
        for item in self.items.values():
            if item.state != "running":
                continue
            if item.key in abandoned:
                self.engine.overdue[item.key] = _Overdue(item.step, "interrupted")
            else:
                item.state = "pending"  # never started: released by `_end`

    def _end(self) -> None:
        """Store what finished; release the claims of whatever did not (it stays pending)."""
        try:
            self._flush()
        finally:
            if self.claims is not None:
                # abandoned calls (overdue) and calls still running (an abandoned pass)
                # keep their claims until they return
                running = {k for k, it in self.items.items() if it.state == "running"}
                left = self.mine - set(self.engine.overdue) - running
                if left:
                    self.claims.release(left)
                self.mine.clear()

    # -- claiming and starting ------------------------------------------------------------------

    def _look_for_gone_holders(self) -> None:
        """While other processes hold objects of this pass, check now and then whether one
        of them is gone (kill -9): its objects must not wait for this pass to end."""
        if self.claims is None or not self.report.held_elsewhere or self.rescan:
            return
        now = time.monotonic()
        if now - self.reaped_at < REAP_EVERY:
            return
        self.reaped_at = now
        try:
            gone = self.claims.lease.reap(["sync"])
        except Exception as exc:
            if not transient(exc):
                raise
            return  # the store is away for a moment: look again later
        if gone:
            self.rescan = True
            self.report.next_run = self.engine.clock()  # the next pass starts at once

    def _top_up(self) -> None:
        """Move ready objects to `startable`; with claims, claim them in small batches."""
        if self.claims is None:
            self.startable.extend(self.ready)
            self.ready.clear()
            return
        while (self.ready or self.later) and not self.engine.stopping:
            in_hand = self.running + len(self.startable)
            if in_hand > self.engine.settings.workers:
                return  # enough to do: claim when workers free up
            self._claim(self._next_batch(in_hand))
            if in_hand or self.startable:
                return  # one batch at a time while there is work in hand

    def _next_batch(self, in_hand: int) -> list[Key]:
        batch: list[Key] = []
        while len(batch) < self.claim_target - in_hand:
            source = self.ready or self.later
            if not source:
                break
            key = source.popleft()
            if self.items[key].state == "pending":
                batch.append(key)
        return batch

    def _claim(self, batch: list[Key]) -> None:
        """Claim `batch`, storing what finished in the same step (one per batch)."""
        engine = self.engine
        result = self._flush(batch) if batch else None
        held = result.held if result is not None else set()
        rows: dict[Key, Mapping[str, Any]] = dict(result.rows) if result is not None else {}
        changed = [k for k in held if k in rows and _version(rows[k]) > self.items[k].version]
        if changed:  # a newer version for the step: the whole row (still ours: claimed)
            whole = retrying(
                lambda: engine.accessor.load_rows(changed),
                what="reading changed objects",
                stopping=lambda: engine.stopping,
            )
            for key in changed:
                if key in whole:
                    rows[key] = whole[key]
                else:
                    del rows[key]  # purged since the claim
        now = engine.clock()
        self.mine |= held
        for key in batch:
            item, row = self.items[key], rows.get(key)
            if key not in held:
                # Held by another process, or no longer pending: another process dealt
                # with it since the pass read it, and its dependents wait for the next pass.
                item.state = "claimed"
                self.report.held_elsewhere += 1
                self._hold_dependents(item, None)
                continue
            if row is None or bool(row["deleted"]) != self.deleted:
                self._drop(item, "done")  # purged, or deleted or undeleted meanwhile
                continue
            version = _version(row)
            enacted = row["enacted"]
            if not self.deleted and enacted is not None and enacted >= version:
                self._drop(item, "done")  # done elsewhere since we read it
            elif not is_ready(read_register(row["backend_register"]), version, now):
                self._drop(item, "claimed")  # failed elsewhere meanwhile: it holds dependents
            else:
                if version > item.version:  # the latest data goes to the step
                    item.obj, item.version = type(item.obj).from_row(row), version
                else:
                    item.obj.note_stored(
                        {"enacted": enacted, "backend_register": row["backend_register"]}
                    )
                self.startable.append(key)

    def _drop(self, item: _Item, state: str) -> None:
        """A claimed object another process dealt with meanwhile; release it soon."""
        item.state = state
        self.to_release.append(item.key)
        if self.unflushed_since is None:
            self.unflushed_since = time.monotonic()
        if state == "done":
            self._release_dependents(item)
        else:
            self._hold_dependents(item, None)

    def _start_ready(self) -> None:
        """Hand claimed objects to the pool while calls in hand and finished outcomes not
        yet stored stay under 2 x `sync.workers`: whatever a kill -9 can lose (calls that
        finished meanwhile, outcomes not committed) stays within that bound however many
        objects are claimed, and the workers still have calls queued while outcomes are
        written."""
        engine = self.engine
        bound = loss_bound(engine.settings)
        if self.startable and not self.running and self.unstored >= bound:
            self._flush()  # (not reached while flushes keep up: they come at the bound)
        chunk: list[Key] = []
        chunk_timeout: float | None = None
        while self.startable and not engine.stopping and self.running + self.unstored < bound:
            key = self.startable.popleft()
            item = self.items[key]
            if item.state != "pending":
                continue
            traits = engine.traits(item.steps)
            if traits.limited:
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
            if traits.limited:  # counted only where a limit is checked
                for step_cls in item.steps:
                    self.in_flight[step_cls] += 1
            self.running += 1
            self.report.attempted += 1
            if traits.chunkable and engine.quick(item.steps):
                if chunk and chunk_timeout != traits.timeout:
                    self._submit_chunk(chunk, chunk_timeout)
                    chunk = []
                chunk.append(key)
                chunk_timeout = traits.timeout
                if len(chunk) == CHUNK:
                    self._submit_chunk(chunk, chunk_timeout)
                    chunk = []
            else:
                engine.pool.submit(key, self._caller(item), traits.timeout)
        if chunk:
            self._submit_chunk(chunk, chunk_timeout)

    def _submit_chunk(self, keys: list[Key], timeout: float | None) -> None:
        """Objects of quick steps: one hand-over to a worker for all of them."""
        pool = self.engine.pool
        if len(keys) == 1:
            pool.submit(keys[0], self._caller(self.items[keys[0]]), timeout)
        else:
            pool.submit_batch([(k, self._caller(self.items[k])) for k in keys], timeout)

    def _caller(self, item: _Item) -> Callable[[], None]:
        engine, deleted = self.engine, self.deleted
        return lambda: engine.call(item, deleted)

    def _take(self, pool: WorkerPool) -> None:
        wait = 0.2
        if self.unflushed_since is not None:
            due = self.unflushed_since + FLUSH_INTERVAL
            wait = max(0.0, min(wait, due - time.monotonic()))
        done = pool.next_completion(wait)
        if done is None:
            return
        item = self.items.get(done.key)  # type: ignore[call-overload]
        if item is None or item.state != "running":
            return  # a late result of a call that already timed out
        self._complete(item, done.error, done.timed_out, done.duration)

    def _complete(
        self, item: _Item, error: BaseException | None, timed_out: bool, duration: float
    ) -> None:
        """A call of `item` returned (or timed out): its outcome."""
        self.running -= 1
        traits = self.engine.traits(item.steps)
        if traits.limited:
            for step_cls in item.steps:
                self.in_flight[step_cls] -= 1
                parked = self.parked.get(step_cls)
                if parked:
                    self.startable.appendleft(parked.popleft())
        self.engine.took(item.steps, duration)
        outcome = classify(error, timed_out, duration, self.deleted, traits.timeout)
        if timed_out:
            # Its thread runs on: the object must not start again until it returns.
            self.engine.overdue[item.key] = _Overdue(item.step, outcome.message)
            outcome = attrs.evolve(outcome, message=outcome.message + STILL_RUNNING)
        if error is not None and outcome.kind == "error":
            log_failure(
                self.engine._log.bind(step=item.step.__name__, id=item.key[1]),
                "delete_record" if self.deleted else "sync_record",
                error,
                outcome.message,
            )
        self._finish(item, outcome)

    def _finish(self, item: _Item, outcome: Outcome) -> None:
        engine = self.engine
        now = engine.clock()
        self.unstored += 1
        if item.key in self.mine:
            (self.to_keep if item.key in engine.overdue else self.to_release).append(item.key)
        if self.unflushed_since is None:
            self.unflushed_since = time.monotonic()
        self.report.outcomes[outcome.kind] += 1
        if outcome.ok:
            item.state = "done"
            self.report.succeeded += 1
            if self.deleted:
                self.writes.purge(item.obj)
            else:
                text = success_text(read_register(item.obj.backend_register), now)
                self.writes.update(
                    item.obj,
                    {
                        "enacted": item.version,
                        "backend_status": "OK",
                        "backend_code": BackendCode.OK,
                        "backend_register": text,
                        "backend_need_delete": True,
                    },
                )
                if engine.traits(item.steps).after_save:
                    self.after_save.append((item.steps, item.obj))
            self._release_dependents(item)
        else:
            item.state = "failed"
            self.report.failed.add(item.key)
            register = failure_register(
                read_register(item.obj.backend_register),
                kind=outcome.kind,
                now=now,
                version=item.version,
                backoff=engine.settings.backoff,
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
        if outcome.ok:
            # Done for this pass: nothing reads the object again, and a pass that holds
            # every object it synced until it ends would grow by each one's new register.
            del item.obj

    def _release_dependents(self, item: _Item) -> None:
        """`item` is done (here or elsewhere): dependents with nothing else to wait for go."""
        for dep in item.dependents:
            dependent = self.items[dep]
            dependent.deps_left -= 1
            if dependent.deps_left == 0 and dependent.state == "pending":
                self.ready.append(dep)

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
        leaf = failed.obj.leaf_name
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

    def _maybe_flush(self) -> None:
        """Write when the workers are about to run short, or the oldest outcome waited long
        enough; with claims, take the next batch in the same transaction when workers run
        short.

        The workers run short when nothing more may start (calls in hand and outcomes
        waiting are at the loss bound) and fewer calls than workers are left: every
        `sync.workers` outcomes while calls take a while. Calls that return faster than
        they are taken are all taken first: up to 2 x `sync.workers` outcomes per write,
        half the transactions.
        """
        if self.unflushed_since is None:
            return
        settings = self.engine.settings
        bound = loss_bound(settings)
        if (
            (
                self.running + self.unstored >= bound
                and self.running < settings.workers
                and self.engine.pool.completions.empty()
            )
            or self.writes.size >= bound
            or time.monotonic() - self.unflushed_since >= FLUSH_INTERVAL
        ):
            in_hand = self.running + len(self.startable)
            if (
                self.claims is not None
                and (self.ready or self.later)
                and in_hand <= settings.workers
                and not self.engine.stopping
            ):
                self._claim(self._next_batch(in_hand))
            else:
                self._flush()

    def _flush(self, claim: list[Key] | None = None) -> ClaimResult | None:
        """Store the outcomes and release their claims in one step (with `claim`, claim
        that batch too), then run the steps' `after_sync_save` follow-ups."""
        release, keep = self.to_release, self.to_keep
        claims = self.claims
        if claim is None and (self.ready or self.later) and not self.engine.stopping:
            # More claims to come this pass: the releases ride with the next one (a
            # finished object's claim only keeps other processes off what is done).
            release = []
        result: ClaimResult | None = None
        if self.writes.size or release or keep or claim:
            if claims is None:
                release, keep = [], []
            pending = "sync_deleted" if self.deleted else "sync"
            tries = 0

            def store() -> ClaimResult | None:
                nonlocal tries
                tries += 1
                # A retry after a lost connection may find the claims of a commit whose
                # answer never arrived: they are this process's own, taken as obtained.
                request = (
                    ClaimRequest(claim, pending, _RECHECK, adopt_own=tries > 1) if claim else None
                )
                return self.writes.flush(claims, claim=request, release=release, keep=keep)

            result = retrying(store, what="storing outcomes", stopping=lambda: self.engine.stopping)
        self.mine.difference_update(release)
        self.mine.difference_update(keep)
        if release:
            self.to_release = []
        self.to_keep = []
        self.unflushed_since = None
        self.unstored = 0
        self._after_save()
        return result

    def _after_save(self) -> None:
        if self.after_save:
            done, self.after_save = self.after_save, []
            for steps, obj in done:
                for step_cls in steps:
                    hook = getattr(step_cls, "after_sync_save", None)
                    if hook is None:
                        continue
                    step = step_cls(
                        model_accessor=self.engine.accessor,
                        log=self.engine._log.bind(step=step_cls.__name__),
                    )
                    try:
                        with acting_as("sync"):
                            step.after_sync_save(obj)  # type: ignore[attr-defined]
                    except Exception:
                        # The success is already stored; a failing follow-up must not undo it.
                        self.engine._log.bind(step=step_cls.__name__, id=obj.id).exception(
                            "after_sync_save failed"
                        )
