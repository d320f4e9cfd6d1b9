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

import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence

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
    Claims,
    Key,
    Lease,
    ModelAccessor,
    ModelObject,
    acting_as,
    policy_pending,
)

#: What a claim re-reads to learn whether another process policed the object meanwhile.
_RECHECK = ("id", "deleted", "policed")


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
        #: Claims shared with other runtime processes on the same store (see `Claims`).
        self.claims = Claims(lease, "policy") if lease is not None else None

    def policies_for(self, leaf: str) -> list[type[ModelPolicy]]:
        """Policies of the model and of every base model, base model first."""
        found: list[type[ModelPolicy]] = []
        for model in reversed(self.accessor.models.ancestors(leaf)):
            found.extend(self.policies.get(model, ()))
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
        writes = OutcomeWriter(self.accessor)
        ready: dict[Key, tuple[ModelObject, str, float]] = {}
        for obj, action in self.pending():
            report.fetched += 1
            key = obj.store_key
            version = policy_version(obj)
            retry = self._retries.get(key)
            if retry is not None and retry.version < version:
                del self._retries[key]  # changed since it failed: ready at once
                retry = None
            if key in skip or (retry is not None and retry.next_run > now):
                report.waiting += 1
                if retry is not None and key not in skip:
                    report.next_run = (
                        retry.next_run
                        if report.next_run is None
                        else min(report.next_run, retry.next_run)
                    )
                continue
            ready[key] = (obj, action, version)
        keep()  # the pass's objects live until it ends
        if self.claims is not None:
            self.claims.lease.reap(["policy"])
            self._claim(ready, now, report)
        try:
            self._run(ready, writes, report)
        finally:
            if self.claims is not None:
                self.claims.release_all()
        return report

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        with long_lived() as keep:
            return self._pass(set(exclude), keep)

    def _claim(
        self, ready: dict[Key, tuple[ModelObject, str, float]], now: float, report: PassReport
    ) -> None:
        """Keep what this process holds and what no other process policed meanwhile."""
        assert self.claims is not None
        held: set[Key] = set()
        for deleted in (False, True):
            # What another process policed meanwhile is not claimed (`policy_pending`).
            keys = [k for k, (_o, action, _v) in ready.items() if (action == "delete") == deleted]
            held |= self.claims.claim(keys, where=policy_pending(deleted))
        for key in [k for k in ready if k not in held]:
            del ready[key]
            report.waiting += 1
            report.held_elsewhere += 1
        # The claim's conditions saw its statement's snapshot: re-read what it obtained.
        rows = self.accessor.load_rows(ready, columns=_RECHECK)
        for key in list(ready):
            row = rows.get(key)
            _obj, action, version = ready[key]
            policed = row["policed"] if row is not None else None
            if (
                row is None
                or bool(row["deleted"]) != (action == "delete")
                or (policed is not None and policed >= version)
            ):
                del ready[key]

    def _run(
        self,
        ready: dict[Key, tuple[ModelObject, str, float]],
        writes: OutcomeWriter,
        report: PassReport,
    ) -> None:
        running: dict[Key, tuple[ModelObject, str, float]] = {}
        self.pool.new_epoch()
        for key, (obj, action, version) in ready.items():
            if self.stopping:
                break
            running[key] = (obj, action, version)
            report.attempted += 1
            self.pool.submit(key, self._caller(obj, action), self.settings.timeout)
        pool = self.pool
        meter = self.meter("policies", len(running))
        while running and not self.abandoned:
            if meter is not None and meter.due():
                settled = report.succeeded + len(report.failed)
                meter.report(settled, min(len(running), self.workers), len(report.failed))
            done = pool.next_completion()
            if done is None or done.key not in running:
                continue  # a late result of a call that already timed out
            obj, action, version = running.pop(done.key)
            outcome = classify(
                done.error,
                done.timed_out,
                done.duration,
                action == "delete",
                self.settings.timeout,
                call=f"handle_{action}",
            )
            self._record(done.key, obj, action, version, outcome, writes, report, done.error)
        writes.flush()
        if meter is not None:
            meter.finish(report.succeeded + len(report.failed), len(report.failed))

    def _caller(self, obj: ModelObject, action: str) -> Callable[[], None]:
        return lambda: self.call(obj, action)

    def call(self, obj: ModelObject, action: str) -> None:
        """Run every applicable handler for `action` on `obj` (in a worker thread)."""
        leaf = obj.model_name
        with acting_as("policy"):
            for policy_cls in self.policies_for(leaf):
                handler = getattr(policy_cls, f"handle_{action}", None)
                if handler is None:
                    continue
                log = lazy_log(self._log, policy=policy_cls.__name__, model=leaf, id=obj.id)
                policy = policy_cls(model_accessor=self.accessor, log=log)
                getattr(policy, f"handle_{action}")(obj)

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
            self._retries.pop(key, None)
            writes.update(
                obj, {"policed": version, "policy_status": "done", "policy_code": BackendCode.OK}
            )
            if action == "delete" and leaf not in self.synced_models:
                writes.purge(obj)
            else:
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
        for policy_cls in self.policies_for(leaf):
            self.report(self.on_outcome, policy_cls, obj, action, outcome)

    def _after_save(self, obj: ModelObject) -> None:
        for policy_cls in self.policies_for(obj.model_name):
            if getattr(policy_cls, "after_policy_save", None) is None:
                continue
            policy = policy_cls(model_accessor=self.accessor, log=self._log)
            try:
                with acting_as("policy"):
                    policy.after_policy_save(obj)  # type: ignore[attr-defined]
            except Exception:
                self._log.bind(policy=policy_cls.__name__, id=obj.id).exception(
                    "after_policy_save failed"
                )
