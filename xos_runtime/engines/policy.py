"""The policy engine: runs model policies when objects are created, updated or deleted.

Each pass fetches the objects whose data changed since they were last policed (by a user or a
sync step, reference 3.2) and the deleted objects not yet policed, and runs every applicable
policy on each, concurrently on a bounded pool. Differences from the original (reference 8.C1):

* a policy of a base model applies to rows of its sub-models, and an object is handled once
  per pass even when both its model and a base model have policies (base model first);
* handlers receive the most derived object (`leaf_model`);
* every policy's `after_policy_save` runs, not only the last one's;
* a failure is retried with backoff instead of on every pass, and a timeout fails the call
  instead of blocking the engine.

Saves made by handlers move `changed_by_policy`, which re-triggers sync steps but not
policies. A deleted object of a model no sync step observes is purged once its policies
handled the deletion; otherwise the sync engine purges it after `delete_record`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import attrs

from xos_runtime.config import PolicySettings
from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.longlived import long_lived
from xos_runtime.engines.outcome import BackendCode, Outcome, classify, log_failure
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.retry import next_retry
from xos_runtime.engines.sink import OutcomeSink
from xos_runtime.engines.steplog import lazy_log
from xos_runtime.engines.writer import OutcomeWriter
from xos_runtime.steps import ModelPolicy
from xos_runtime.store import (
    Key,
    Lease,
    ModelAccessor,
    ModelObject,
    acting_as,
    retrying,
)

#: Outcomes are stored at least every this many objects, and at least this often (seconds):
#: all that a process killed in the middle of a pass can lose.
FLUSH_EVERY = 500
FLUSH_INTERVAL = 0.1

#: Quick calls go to the workers in batches that run about this long (seconds), of at most
#: `MAX_BATCH` calls: a hand-over between threads per call would cost more than the call.
BATCH_SECONDS = 0.002
MAX_BATCH = 256

_OK = int(BackendCode.OK)

#: Outcomes between two looks at the clock (flushes, progress) while calls complete.
_CHECK_EVERY = 32

#: The handler of each action.
_HANDLERS = {action: f"handle_{action}" for action in ("create", "update", "delete")}


@attrs.define
class _Retry:
    """In-memory backoff of one object whose policies failed (reset by a change)."""

    version: float
    failures: int
    next_run: float


def policy_version(obj: ModelObject) -> float:
    """The version a successful policy run marks as policed (reference 3.4)."""
    if obj.deleted:
        return obj.updated or 0.0
    return max(obj.updated or 0.0, obj.changed_by_step or 0.0)


class PolicyEngine(LoopEngine):
    """Runs `ModelPolicy` handlers for changed and deleted objects (module docstring)."""

    name = "policies"

    def __init__(
        self,
        accessor: ModelAccessor,
        policies: Sequence[type[ModelPolicy]],
        settings: PolicySettings | None = None,
        *,
        poll_interval: float = 5.0,
        synced_models: Collection[str] = (),
        lease: Lease | None = None,
        outcomes: OutcomeSink | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        self.settings = settings or PolicySettings()
        super().__init__(
            accessor,
            workers=self.settings.workers,
            poll_interval=poll_interval,
            clock=clock,
        )
        self.policies: dict[str, list[type[ModelPolicy]]] = {}
        for policy in policies:
            self.policies.setdefault(str(policy.model_name), []).append(policy)
        self.synced_models = frozenset(synced_models)
        self.on_outcome = outcomes.policy if outcomes is not None else None
        self.rand = rand
        self._retries: dict[Key, _Retry] = {}
        #: `policies_for` and `_after_save_policies`, by leaf model (policies do not change).
        self._for_leaf: dict[str, list[type[ModelPolicy]]] = {}
        self._with_after_save: dict[str, list[type[ModelPolicy]]] = {}
        #: The policies of a leaf model with a handler for an action.
        self._handlers: dict[tuple[str, str], list[type[ModelPolicy]]] = {}
        #: How long a call took lately (seconds; None: no call seen yet): sizes batches.
        self._call_seconds: float | None = None
        #: Claims shared with other runtime processes on the same store (see `Claims`).
        self.claims = lease.claims("policy") if lease is not None else None

    def policies_for(self, leaf: str) -> list[type[ModelPolicy]]:
        """Policies of the model and of every base model, base model first."""
        found = self._for_leaf.get(leaf)
        if found is None:
            found = []
            for model in reversed(self.accessor.models.ancestors(leaf)):
                found.extend(self.policies.get(model, ()))
            self._for_leaf[leaf] = found
        return list(found)

    def _after_save_policies(self, leaf: str) -> list[type[ModelPolicy]]:
        """The policies of `leaf` with an `after_policy_save` (found once per model)."""
        found = self._with_after_save.get(leaf)
        if found is None:
            found = self._with_after_save[leaf] = [
                p
                for p in self.policies_for(leaf)
                if getattr(p, "after_policy_save", None) is not None
            ]
        return found

    # -- a pass ---------------------------------------------------------------------------------

    def pending(self) -> list[tuple[ModelObject, str]]:
        """What the policies would handle now: each object with `create`, `update` or
        `delete` (read by a pass, and by `plan`)."""
        names = [m for m in self.policies if self.accessor.has_model_class(m)]
        work: list[tuple[ModelObject, str]] = []
        for deleted in (False, True):
            for obj in self.accessor.fetch_policy_pending(names, deleted=deleted):
                obj = obj.as_leaf()  # the row holds every column: no query
                action = "delete" if deleted else ("create" if obj.policed is None else "update")
                work.append((obj, action))
        return work

    def _pass(self, skip: set[Key], keep: Callable[[], None]) -> PassReport:
        report = PassReport()
        now = self.clock()
        names = [m for m in self.policies if self.accessor.has_model_class(m)]
        claimed: dict[str, set[int]] | None = None
        if self.claims is not None:
            # Claim first, then read: the read sees whatever another process finished
            # before it released an object, so what it still finds pending is ours to run.
            self.claims.lease.reap(["policy"])
            claimed = self.accessor.claim_policy_work(self.claims, names)
        try:
            self._prepare_and_run(names, skip, now, claimed, keep, report)
        finally:
            if self.claims is not None:
                self.claims.release_all()
        return report

    def _prepare_and_run(
        self,
        names: list[str],
        skip: set[Key],
        now: float,
        claimed: dict[str, set[int]] | None,
        keep: Callable[[], None],
        report: PassReport,
    ) -> None:
        """Read what is pending (with claims: what this process now holds), keep what is
        ready, and run it."""
        objects, others = self.accessor.fetch_policy_work(names, only=claimed)
        ready: list[tuple[Key, ModelObject, str, float]] = []
        gone: list[tuple[Key, ModelObject, str, float]] = []
        unwanted: list[Key] = []
        for obj in objects:
            report.fetched += 1
            key = obj.store_key
            version = policy_version(obj)
            if key in skip or (self._retries and self._backing_off(key, version, now, report)):
                report.waiting += 1
                unwanted.append(key)
                continue
            if obj.deleted:
                gone.append((key, obj, "delete", version))
            else:
                ready.append((key, obj, "create" if obj.policed is None else "update", version))
        ready.extend(gone)  # deletions after the rest, as reads of each kind did
        for key in others:  # pending, and another process holds it
            report.fetched += 1
            report.waiting += 1
            if key not in skip:
                report.held_elsewhere += 1
        keep()  # the pass's objects live until it ends
        if self.claims is not None and claimed is not None:
            # claimed but not to run: backing off, skipped, or done meanwhile elsewhere
            if sum(map(len, claimed.values())) != len(objects):
                read = {o.store_key for o in objects}
                unwanted.extend(
                    (root, i) for root, ids in claimed.items() for i in ids if (root, i) not in read
                )
            self.claims.release(unwanted)
        self._run(ready, report)

    def _backing_off(self, key: Key, version: float, now: float, report: PassReport) -> bool:
        """Whether `key` waits for its retry time (noted in `report`); a change since it
        failed makes it ready at once."""
        retry = self._retries.get(key)
        if retry is not None and retry.version < version:
            del self._retries[key]
            return False
        if retry is None or retry.next_run <= now:
            return False
        report.next_run = (
            retry.next_run if report.next_run is None else min(report.next_run, retry.next_run)
        )
        return True

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        with long_lived() as keep:
            return self._pass(set(exclude), keep)

    def _run(self, ready: list[tuple[Key, ModelObject, str, float]], report: PassReport) -> None:
        """Run the handlers of `ready` on the pool, quick ones in batches, and store their
        outcomes every `FLUSH_EVERY` objects or `FLUSH_INTERVAL` seconds."""
        pool = self.pool
        pool.new_epoch()
        writes = OutcomeWriter(self.accessor)
        timeout = self.settings.timeout
        running: dict[Any, tuple[Key, ModelObject, str, float]] = {}
        meter = self.meter("policies", len(ready))
        at, total = 0, len(ready)
        in_hand = 2 * self.workers * self._batch_size()  # calls in hand before handing more
        unflushed_since = 0.0
        while not self.abandoned:
            if at < total and len(running) < in_hand and not self.stopping:
                # Hand over work while the workers have less than two batches each in hand.
                size = self._batch_size()
                in_hand = 2 * self.workers * size
                while at < total and len(running) < in_hand:
                    n = max(1, min(size, (total - at) // self.workers))
                    calls = []
                    for key, obj, action, version in ready[at : at + n]:
                        running[key] = (key, obj, action, version)
                        calls.append((key, self._caller(obj, action)))
                    at += n
                    report.attempted += n
                    if n == 1:
                        pool.submit(calls[0][0], calls[0][1], timeout)
                    else:
                        pool.submit_batch(calls, timeout)
            if not running:
                break
            done = pool.next_completion(FLUSH_INTERVAL)
            entry = running.pop(done.key, None) if done is not None else None
            if entry is not None:  # (None: a late result of a call that timed out)
                assert done is not None
                key, obj, action, version = entry
                if not done.timed_out:
                    self._note_duration(done.duration)
                outcome = classify(
                    done.error,
                    done.timed_out,
                    done.duration,
                    action == "delete",
                    timeout,
                    call=_HANDLERS[action],
                )
                if not writes.size:
                    unflushed_since = time.monotonic()
                self._record(key, obj, action, version, outcome, writes, report, done.error)
                if writes.size % _CHECK_EVERY:
                    continue  # the clock is read every few outcomes, not after each
            if meter is not None and meter.due():
                settled = report.succeeded + len(report.failed)
                meter.report(settled, min(len(running), self.workers), len(report.failed))
            if writes.size and (
                writes.size >= FLUSH_EVERY or time.monotonic() - unflushed_since >= FLUSH_INTERVAL
            ):
                self._flush(writes)
        self._flush(writes)
        if meter is not None:
            meter.finish(report.succeeded + len(report.failed), len(report.failed))

    def _flush(self, writes: OutcomeWriter) -> None:
        retrying(writes.flush, what="storing policy outcomes", stopping=lambda: self.stopping)

    def _batch_size(self) -> int:
        """Calls per batch: one while calls are not known to be quick, else as many as run in
        about `BATCH_SECONDS` (a batch's calls still time out one by one)."""
        mean = self._call_seconds
        if mean is None:
            return 1
        return max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(mean, 1e-7))))

    def _note_duration(self, seconds: float) -> None:
        """Follow how long calls take (a moving average: slower calls shrink batches)."""
        mean = self._call_seconds
        self._call_seconds = seconds if mean is None else mean + (seconds - mean) * 0.05

    def _caller(self, obj: ModelObject, action: str) -> Callable[[], None]:
        return functools.partial(self.call, obj, action)

    def call(self, obj: ModelObject, action: str) -> None:
        """Run every applicable handler for `action` on `obj` (in a worker thread)."""
        leaf = obj.model_name
        name = _HANDLERS[action]
        handlers = self._handlers.get((leaf, action))
        if handlers is None:
            handlers = self._handlers[(leaf, action)] = [
                p for p in self.policies_for(leaf) if getattr(p, name, None) is not None
            ]
        with acting_as("policy"):
            for policy_cls in handlers:
                log = lazy_log(self._log, policy=policy_cls.__name__, model=leaf, id=obj.id)
                policy = policy_cls(model_accessor=self.accessor, log=log)
                getattr(policy, name)(obj)

    def _record(
        self,
        key: Key,
        obj: ModelObject,
        action: str,
        version: float,
        outcome: Outcome,
        writes: OutcomeWriter,
        report: PassReport,
        error: BaseException | None = None,
    ) -> None:
        report.outcomes[outcome.kind] += 1
        leaf = obj.model_name
        if outcome.ok:
            report.succeeded += 1
            if self._retries:
                self._retries.pop(key, None)
            done = {"policed": version, "policy_status": "done", "policy_code": _OK}
            writes.update(obj, done, key[0])
            if action == "delete" and leaf not in self.synced_models:
                writes.purge(obj)
            elif self._after_save_policies(leaf):
                self._after_save(obj)
        else:
            report.failed.add(key)
            previous = self._retries.get(key)
            retry = next_retry(
                self.settings.backoff,
                previous.failures if previous else 0,
                now=self.clock(),
                deferred=outcome.kind == "deferred",
                delay=outcome.retry_at,
                rand=self.rand,
            )
            failures, next_run = retry.failures, retry.at
            if outcome.kind != "permanent":
                report.next_run = (
                    next_run if report.next_run is None else min(report.next_run, next_run)
                )
            else:
                next_run = float("inf")  # until the object changes
            self._retries[key] = _Retry(version, failures, next_run)
            writes.update(obj, {"policy_status": outcome.message, "policy_code": outcome.code})
            log = self._log.bind(model=leaf, id=obj.id)
            log_failure(log, f"policy handle_{action}", error, outcome.message)
        hook = self.on_outcome
        if hook is not None:
            for policy_cls in self._for_leaf.get(leaf) or self.policies_for(leaf):
                try:
                    hook(policy_cls, obj, action, outcome)
                except Exception:  # as `LoopEngine.report`: an observer's bug is not ours
                    self._log.exception("an outcome hook of the policies engine raised; ignored")

    def _after_save(self, obj: ModelObject) -> None:
        for policy_cls in self._after_save_policies(obj.model_name):
            policy = policy_cls(model_accessor=self.accessor, log=self._log)
            try:
                with acting_as("policy"):
                    policy.after_policy_save(obj)  # type: ignore[attr-defined]
            except Exception:
                self._log.bind(policy=policy_cls.__name__, id=obj.id).exception(
                    "after_policy_save failed"
                )
