"""What `xos-runtime status` reports: objects pending, in error, held back or backing off.

Whether an object is pending is the store's to say (`store.sync_pending`, the conditions
`fetch_pending` and the claims use): the status query selects them as a column, so that
`status` and the sync engine can never disagree on it.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from xos_runtime.engines.outcome import BackendCode
from xos_runtime.engines.register import read_register
from xos_runtime.store import (
    ModelAccessor,
    ProcessIdentity,
    SqlStore,
    held_claims,
    read_owners,
    sync_pending,
)

#: The label of the column that says a row's state (`state_column`).
_STATE = "xos_runtime_state"


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


def failure_state(register: dict[str, Any], code: int, version: float, now: float) -> str | None:
    """How `plan` names an object whose sync of `version` failed: `error` (backend code 2,
    or a permanent failure), `deferred` (code 0) or `backing_off` (an innocuous failure
    waiting for its `next_run`); None when this version did not fail, or an innocuous
    failure's backoff is over. `state_column` says the same in SQL for `status` (the tests
    check that they agree)."""
    if not register.get("failures") or register.get("version") != version:
        return None
    if register.get("permanent") or code == BackendCode.ERROR:
        return "error"
    if code == BackendCode.PENDING:
        return "deferred"
    if float(register.get("next_run") or 0) > now:
        return "backing_off"
    return None


#: How the status of an object held back by a failed dependency starts (the sync engine's
#: `_hold_dependents` writes it): then the model and id of the object at fault, its message.
HELD_BACK_PREFIX = "Failed due to error in model "
_HELD_BACK = re.compile(re.escape(HELD_BACK_PREFIX) + r"(?P<model>\S+) id (?P<id>\d+): ")


def held_back_by(backend_status: str) -> tuple[str, int] | None:
    """The object (model, id) that holds back an object whose status is `backend_status`,
    or None if the status does not say it is held back."""
    m = _HELD_BACK.match(backend_status)
    return (m["model"], int(m["id"])) if m else None


#: A JSON number, as PostgreSQL's regular expressions find it in the register's text.
_NUMBER = r"(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)"


class _Register:
    """`backend_register` read in SQL, as tolerant as `read_register`: a register that is
    not JSON reads as empty, it never fails the query. SQLite checks it with `json_valid`
    and reads it with its JSON functions; PostgreSQL (which has no JSON check before
    version 16) finds the keys with regular expressions in the text `register.py` writes."""

    def __init__(self, table: sa.Table, dialect: str):
        self.column = table.c.backend_register
        self.postgres = dialect == "postgresql"
        valid = sa.func.json_valid(self.column) == 1
        self.json = sa.type_coerce(sa.case((valid, self.column), else_=sa.null()), sa.JSON)

    def number(self, key: str) -> sa.ColumnElement[float]:
        if self.postgres:
            found = sa.func.substring(self.column, f'"{key}":\\s*{_NUMBER}')
            return sa.cast(found, sa.Float)
        return self.json[key].as_float()

    def true(self, key: str) -> sa.ColumnElement[bool]:
        if self.postgres:
            return self.column.regexp_match(f'"{key}":\\s*true')
        return self.json[key].as_boolean() == sa.true()


def state_column(table: sa.Table, dialect: str, now: float) -> sa.ColumnElement[str]:
    """The state of each row of `table` at time `now`, as an SQL expression: the rule of
    `status`, of `/metrics` and of the status page, in one place.

    `deleting`; not pending: `ok`, `error` (the last sync failed and nothing changed since)
    or `policy_error` (in sync, but its policy failed); pending: `held_back` (a dependency
    failed, see `held_back_by`), and for an object whose current version failed `error`
    (permanent, or an error it keeps), `deferred` or `backing_off` (until `next_run`);
    otherwise `pending`.
    """
    t = table
    code = sa.func.coalesce(t.c.backend_code, 0)
    reg = _Register(t, dialect)
    updated = sa.func.coalesce(t.c.updated, 0.0)
    by_policy = sa.func.coalesce(t.c.changed_by_policy, 0.0)
    version = sa.case((updated >= by_policy, updated), else_=by_policy)  # `version_of`
    failed_now = sa.and_(
        reg.number("failures") > 0,
        reg.number("version") == version,
    )
    failed_state = sa.case(
        (sa.or_(reg.true("permanent"), code == BackendCode.ERROR), "error"),
        (code == BackendCode.PENDING, "deferred"),
        (sa.func.coalesce(reg.number("next_run"), 0.0) > now, "backing_off"),
        else_="pending",
    )
    pending_state = sa.case(
        (t.c.backend_status.startswith(HELD_BACK_PREFIX, autoescape=True), "held_back"),
        (failed_now, failed_state),
        else_="pending",
    )
    settled = sa.case(
        (code == BackendCode.ERROR, "error"),
        (sa.func.coalesce(t.c.policy_code, 0) == BackendCode.ERROR, "policy_error"),
        else_="ok",
    )
    return sa.case(
        (t.c.deleted == sa.true(), "deleting"),
        (sa.and_(*sync_pending(False)(t)), pending_state),
        else_=settled,
    ).label(_STATE)


def count_states(accessor: ModelAccessor, now: float) -> dict[str, dict[str, int]]:
    """Objects per model and state (with each model's `total`), counted by the database in
    one statement (a `GROUP BY` per table, their `UNION ALL`): for `/metrics` at every
    scrape, the status page and `status`. Over a core, the core counts them (its
    `/xosapi/v1/status`, by this same rule)."""
    if accessor.remote:
        report: Any = accessor.core_status()  # a `RemoteAccessor`
        return dict(report["models"])
    store = accessor.store
    with store.read() as conn:
        return _count_states(store, conn, now)


def _count_states(store: SqlStore, conn: Connection, now: float) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    selects = []
    for table in store.schema.tables.values():
        state = state_column(table, store.dialect, now)
        model = table.c.leaf_model_name
        selects.append(sa.select(model, state, sa.func.count()).group_by(model, state))
    if not selects:
        return counts
    for name, st, n in conn.execute(sa.union_all(*selects)):
        bucket = counts.setdefault(str(name), {"total": 0})
        bucket["total"] += int(n)
        bucket[str(st)] = bucket.get(str(st), 0) + int(n)
    return counts


#: The order of `collect_status(limit=...)`: what needs a person first.
_URGENCY = {"error": 0, "policy_error": 1, "held_back": 2, "backing_off": 3, "deferred": 4}


def collect_status(accessor: ModelAccessor, now: float, limit: int | None = None) -> StatusReport:
    """Counts per model and state, the objects not in sync, and the processes at work.

    `limit`: at most that many objects of each table, those in error first, then held
    back, backing off, deferred, and the rest (a status page that polls a store in the
    middle of a large first sync does not read every pending row); None: every one."""
    store = accessor.store
    objects: list[ObjectStatus] = []
    with store.read() as conn:
        for table in store.schema.tables.values():
            state = state_column(table, store.dialect, now)
            query = sa.select(table, state).where(state != "ok")
            if limit is None:
                query = query.order_by(table.c.id)
            else:
                urgency = sa.case(_URGENCY, value=state, else_=len(_URGENCY))
                query = query.order_by(urgency, table.c.id).limit(limit)
            for row in conn.execute(query).mappings():
                r = dict(row)
                register = read_register(r.get("backend_register"))
                name = r.get("name")
                objects.append(
                    ObjectStatus(
                        model=str(r["leaf_model_name"]),
                        id=int(r["id"]),
                        name=name if isinstance(name, str) else None,
                        state=str(r[_STATE]),
                        backend_code=int(r.get("backend_code") or 0),
                        backend_status=str(r.get("backend_status") or ""),
                        failures=int(register.get("failures") or 0),
                        next_run=float(register["next_run"]) if register.get("next_run") else None,
                        policy_code=int(r.get("policy_code") or 0),
                        policy_status=str(r.get("policy_status") or ""),
                    )
                )
        counts = _count_states(store, conn, now)
    return StatusReport(counts, objects, collect_processes(accessor, now))
