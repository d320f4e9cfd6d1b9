"""What `xos-runtime status` reports: objects pending, in error, held back or backing off.

Whether an object is pending is the store's to say (`store.sync_pending`, the conditions
`fetch_pending` and the claims use): the status query selects them as a column, so that
`status` and the sync engine can never disagree on it.
"""

from __future__ import annotations

from typing import Any

import attrs
import sqlalchemy as sa

from xos_runtime.engines.outcome import BackendCode
from xos_runtime.engines.register import read_register, version_of
from xos_runtime.store import (
    ModelAccessor,
    ProcessIdentity,
    held_claims,
    read_owners,
    sync_pending,
)

#: The label of the column that says whether a row is pending (`store.sync_pending`).
_PENDING = "xos_runtime_sync_pending"


@attrs.frozen
class ObjectStatus:
    """One object that needs attention (or, with `state == "ok"`, one that does not)."""

    model: str
    id: int
    name: str | None
    state: str  # pending | backing_off | error | held_back | deferred | deleting | policy_error
    backend_code: int
    backend_status: str
    failures: int = 0
    next_run: float | None = None
    policy_code: int = 0
    policy_status: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ProcessStatus:
    """A runtime process registered on the store, and what it holds."""

    host: str
    pid: int
    name: str
    state: str  # running | gone (dead on this host) | expired (its lease ran out) | unknown
    shares_work: bool
    lease_expires: float | None
    #: Claims per engine (`sync`, `policy`).
    claims: dict[str, int]
    #: Of them, calls abandoned after a timeout that have not returned yet.
    abandoned: int

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class StatusReport:
    """Counts per model, the objects that are not in sync, and the processes at work."""

    counts: dict[str, dict[str, int]]
    objects: list[ObjectStatus]
    processes: list[ProcessStatus] = attrs.Factory(list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.counts,
            "objects": [o.to_dict() for o in self.objects],
            "processes": [p.to_dict() for p in self.processes],
        }


def collect_processes(accessor: ModelAccessor, now: float) -> list[ProcessStatus]:
    """Who works on the store (registered `run` processes) and the claims each holds."""
    store = accessor.store
    here = ProcessIdentity.current()
    found: dict[str, ProcessStatus] = {}
    for o in read_owners(store):
        found[o.owner] = ProcessStatus(
            o.identity.host,
            o.identity.pid,
            o.name,
            o.state(here, now),
            o.shares_work,
            o.expires,
            {},
            0,
        )
    for h in held_claims(store):
        p = found.get(h.owner)
        if p is None:
            host, _, rest = h.owner.partition(":")
            pid = rest.partition(":")[0]
            p = found[h.owner] = ProcessStatus(
                host, int(pid) if pid.isdigit() else 0, "", "unknown", True, None, {}, 0
            )
        p.claims[h.kind] = h.count
        found[h.owner] = attrs.evolve(p, abandoned=p.abandoned + h.abandoned)
    return list(found.values())


def _state(row: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
    register = read_register(row.get("backend_register"))
    code = int(row.get("backend_code") or 0)
    status = str(row.get("backend_status") or "")
    if row.get("deleted"):
        return "deleting", register
    if not row[_PENDING]:
        return ("error" if code == BackendCode.ERROR else "ok"), register
    if status.startswith("Failed due to error in model"):
        return "held_back", register
    version = version_of(row.get("updated"), row.get("changed_by_policy"))
    return failure_state(register, code, version, now) or "pending", register


def failure_state(register: dict[str, Any], code: int, version: float, now: float) -> str | None:
    """How `status` (and `plan`) name an object whose sync of `version` failed: `error`
    (backend code 2, or a permanent failure), `deferred` (code 0) or `backing_off` (an
    innocuous failure waiting for its `next_run`); None when this version did not fail, or
    an innocuous failure's backoff is over."""
    if not register.get("failures") or register.get("version") != version:
        return None
    if register.get("permanent") or code == BackendCode.ERROR:
        return "error"
    if code == BackendCode.PENDING:
        return "deferred"
    if float(register.get("next_run") or 0) > now:
        return "backing_off"
    return None


def collect_status(accessor: ModelAccessor, now: float) -> StatusReport:
    store = accessor.store
    counts: dict[str, dict[str, int]] = {}
    objects: list[ObjectStatus] = []
    with store.read() as conn:
        for table in store.schema.tables.values():
            pending = sa.and_(*sync_pending(False)(table)).label(_PENDING)
            query = sa.select(table, pending).order_by(table.c.id)
            for row in conn.execute(query).mappings():
                r = dict(row)
                model = str(r["leaf_model_name"])
                state, register = _state(r, now)
                if state == "ok" and int(r.get("policy_code") or 0) == BackendCode.ERROR:
                    state = "policy_error"
                bucket = counts.setdefault(model, {"total": 0})
                bucket["total"] += 1
                bucket[state] = bucket.get(state, 0) + 1
                if state == "ok":
                    continue
                name = r.get("name")
                objects.append(
                    ObjectStatus(
                        model=model,
                        id=int(r["id"]),
                        name=name if isinstance(name, str) else None,
                        state=state,
                        backend_code=int(r.get("backend_code") or 0),
                        backend_status=str(r.get("backend_status") or ""),
                        failures=int(register.get("failures") or 0),
                        next_run=float(register["next_run"]) if register.get("next_run") else None,
                        policy_code=int(r.get("policy_code") or 0),
                        policy_status=str(r.get("policy_status") or ""),
                    )
                )
    return StatusReport(counts, objects, collect_processes(accessor, now))
