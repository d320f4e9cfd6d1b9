"""How several runtime processes share one store: leases on processes, claims on objects.

**Leases.** A runtime process that works on a store registers itself in one row (`Lease`):
who it is (hostname, boot id, pid, process start time), whether it shares work, and when its
lease expires. A heartbeat thread renews it every third of the lease time. A process on this
very host and boot is judged by the process table: *gone* at once when its pid is no longer
alive (or now belongs to another process), so a kill -9 on one machine is noticed in the
time of one query; never gone while it lives. A process on another host is gone when its
lease expired.

**Claims.** Before an engine works on an object, it claims it: a row `(kind, root, id) ->
owner` inserted only if none exists (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, the same
statement on SQLite and PostgreSQL). Claims are taken in small batches, keys in one fixed
order, and in a transaction before its releases, so two processes can never wait on each
other in a cycle (no deadlock by construction); they are released in the transaction that
stores the outcomes (the sync engine also takes its next batch there). A claim has no
lease of its own: it lives as long as its owner does. `reap()` hands over the claims of
gone owners (skipping rows another process is reaping, so reapers never wait on each other
either).

A claim alone is not enough: another process may have finished the object between our read
and our claim. Engines therefore re-read what they claimed and drop what is done.

`kind` separates engines: a sync and a policy may work on the same object at once, as in XOS.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from loguru import logger
from sqlalchemy.engine import Connection

from xos_runtime.exceptions import StoreError
from xos_runtime.store.health import retrying
from xos_runtime.store.sqlstore import KeyedWrite, SqlStore
from xos_runtime.store.upsert import dialect_insert

__all__ = [
    "ClaimKey",
    "Claims",
    "HeldClaims",
    "Lease",
    "OwnerInfo",
    "ProcessIdentity",
    "RowFilter",
    "StoreInUse",
    "held_claims",
    "read_owners",
]

ClaimKey = tuple[str, int]  # (root model, id)

#: PostgreSQL advisory lock taken while a process registers ("XRTR").
_REGISTER_LOCK = 0x58_52_54_52

#: Rows per claim statement (SQLite allows 32,766 bound values; 5 per row).
_CHUNK = 500

#: Engine kinds whose `Claims` a lease keeps (`Lease.claims`).
MAX_KINDS = 16

#: Conditions on a row of a root table (see `Claims.claim_in`).
RowFilter = Callable[[sa.Table], Sequence[sa.ColumnElement[bool]]]


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _start_ticks(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot, or None when it is not running.

    Also None for a zombie (killed, not yet reaped by its parent): it does no work any more.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return _alive_without_proc(pid)
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of proc(5): starttime


def _alive_without_proc(pid: int) -> str | None:
    if os.path.isdir("/proc/self"):
        return None  # /proc exists, so the pid's entry is really gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"


@attrs.frozen
class ProcessIdentity:
    """Who runs: enough to tell, from the same host, whether that process still lives."""

    host: str
    boot_id: str
    pid: int
    started: str

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _start_ticks(pid) or "?")

    def same_host(self, here: ProcessIdentity) -> bool:
        """Whether this process runs on `here`'s host and boot (so its pid can be checked)."""
        return self.host == here.host and self.boot_id == here.boot_id != "unknown"

    def gone_here(self, here: ProcessIdentity) -> bool:
        """True when this process ran on `here`'s host and boot and is no longer running."""
        if not self.same_host(here):
            return False
        ticks = _start_ticks(self.pid)
        return ticks is None or (ticks != "?" and self.started != "?" and ticks != self.started)


@attrs.frozen
class OwnerInfo:
    """A registered process, as `status` and `--until-idle` describe it."""

    owner: str
    identity: ProcessIdentity
    expires: float
    shares_work: bool
    name: str

    def describe(self) -> str:
        return f"{self.identity.host} pid {self.identity.pid}"

    def state(self, here: ProcessIdentity, now: float) -> str:
        """`running`, `gone` (dead on this host) or `expired` (its lease ran out).

        On this host the process table answers exactly: a live process keeps its claims
        even past its lease (a starved heartbeat must not let another process start its
        objects while its calls run), a dead one loses them at once. The lease is for
        processes on other hosts.
        """
        if self.identity.same_host(here):
            return "gone" if self.identity.gone_here(here) else "running"
        return "expired" if self.expires < now else "running"


class StoreInUse(StoreError):
    """Another `run` uses the store in a way that excludes this one (`sync.claims: false`)."""


class Lease:
    """This process's registration on a store, kept alive by a heartbeat thread.

    `shares_work` False (`sync.claims: false`) means this process claims nothing and wants
    the store for itself: `register()` refuses to start next to another live `run`, and any
    later `run` refuses to start next to it.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        ttl: float = 60.0,
        shares_work: bool = True,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.ttl = ttl
        self.shares_work = shares_work
        self.name = name
        self.clock = clock
        self.identity = ProcessIdentity.current()
        self.owner = f"{self.identity.host}:{self.identity.pid}:{uuid.uuid4().hex[:8]}"
        self.table = store.schema.processes
        self._registered = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: The claims of each engine kind (`claims`), made once.
        self._claims: dict[str, Claims] = {}
        #: The running processes (owners, sorted) at the last `reap`, this one included.
        self._company: list[str] = [self.owner]

    # -- registration -------------------------------------------------------------------------

    def register(self) -> None:
        """Write this process's row (once); with `shares_work` False, refuse company."""
        with self._lock:
            if self._registered:
                return
            now = self.clock()
            i = self.identity
            with self.store.write() as conn:
                if self.store.dialect == "postgresql":
                    # two `run`s starting at once must not both find the store free (on
                    # SQLite the write transaction already excludes the other)
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _REGISTER_LOCK})
                others = [o for o in read_owners(self.store, conn) if o.owner != self.owner]
                self._refuse_company(others, now)
                conn.execute(
                    sa.insert(self.table).values(
                        owner=self.owner,
                        host=i.host,
                        boot_id=i.boot_id,
                        pid=i.pid,
                        started=i.started,
                        expires=now + self.ttl,
                        shares_work=self.shares_work,
                        name=self.name,
                    )
                )
            self._registered = True

    def _refuse_company(self, others: list[OwnerInfo], now: float) -> None:
        """Raise `StoreInUse` when `sync.claims: false` (here or there) forbids sharing."""
        live = [o for o in others if o.state(self.identity, now) == "running"]
        clash = live if not self.shares_work else [o for o in live if not o.shares_work]
        if not clash:
            return
        other = clash[0]
        raise StoreInUse(
            f"store {self.store.health.name}: another xos-runtime run "
            f"({other.describe()}, name {other.name!r}) uses this store with "
            + (
                "sync.claims: false"
                if not other.shares_work
                else "sync.claims on, and this one has sync.claims: false"
            )
            + "; stop it first, or turn sync.claims on in both"
        )

    def renew(self) -> None:
        now = self.clock()
        with self.store.write() as conn:
            t = self.table
            n = conn.execute(
                sa.update(t).where(t.c.owner == self.owner).values(expires=now + self.ttl)
            ).rowcount
        if n == 0 and self._registered:
            # Another process judged us gone (a long pause) and removed our row: come back.
            logger.warning("this process's lease on the store had lapsed; registering again")
            self._registered = False
            self.register()

    def start_heartbeat(self) -> None:
        """Renew the lease every third of its time, in a daemon thread, until `close()`."""
        self.register()
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, name="xos-runtime-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except Exception as exc:  # the store is away: health logs it; try again later
                logger.opt(exception=exc).debug("lease renewal failed")

    def close(self) -> None:
        """Stop the heartbeat and remove this process and its claims from the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if not self._registered:
            return
        try:
            with self.store.write() as conn:
                c = self.store.schema.claims
                conn.execute(sa.delete(c).where(c.c.owner == self.owner))
                conn.execute(sa.delete(self.table).where(self.table.c.owner == self.owner))
        except Exception as exc:  # gone store: our row expires (or our pid is seen dead)
            logger.opt(exception=exc).debug("could not remove this process from the store")
        self._registered = False

    def claims(self, kind: str) -> Claims:
        """The claims of one engine (`kind`) of this process: one object per kind, whose
        statements are built once. A core serves every batch of a remote engine with it:
        building them again per request was two thirds of the core's work on a batch.
        (Kinds are few; past `MAX_KINDS` a new object is made each time.)"""
        found = self._claims.get(kind)
        if found is None:
            found = Claims(self, kind)
            if len(self._claims) < MAX_KINDS:
                found = self._claims.setdefault(kind, found)
        return found

    # -- other processes ----------------------------------------------------------------------

    def share(self) -> tuple[int, int]:
        """(this process's rank, how many processes share the work), as the last `reap` saw
        them: engines start with their own share of a pass (objects are divided among the
        ranks) so that processes rarely try the same objects. Only a preference: any process
        may take any object."""
        company = self._company
        return company.index(self.owner), len(company)

    def owners(self) -> list[OwnerInfo]:
        """Every registered process (this one included)."""
        return read_owners(self.store)

    def reap(self, kinds: Sequence[str] = ()) -> dict[OwnerInfo, int]:
        """Take over from gone processes: drop their claims (of `kinds`, or all) and rows.

        Returns how many claims each gone owner held. Rows that another process is reaping
        at the same moment are skipped, not waited for.
        """
        now = self.clock()
        owners = self.owners()
        gone = [
            o for o in owners if o.owner != self.owner and o.state(self.identity, now) != "running"
        ]
        left = {o.owner for o in owners} - {o.owner for o in gone}
        self._company = sorted(left | {self.owner})
        if not gone:
            return {}
        c = self.store.schema.claims
        taken: dict[OwnerInfo, int] = {}

        def reap_one(owner: OwnerInfo) -> int:
            with self.store.write() as conn:
                keys = sa.select(c.c.kind, c.c.root, c.c.obj_id).where(c.c.owner == owner.owner)
                if kinds:
                    keys = keys.where(c.c.kind.in_(list(kinds)))
                keys = keys.order_by(c.c.kind, c.c.root, c.c.obj_id)
                if self.store.dialect == "postgresql":
                    keys = keys.with_for_update(skip_locked=True)
                n = conn.execute(
                    sa.delete(c).where(sa.tuple_(c.c.kind, c.c.root, c.c.obj_id).in_(keys))
                ).rowcount
                left = conn.execute(
                    sa.select(sa.func.count()).select_from(c).where(c.c.owner == owner.owner)
                ).scalar_one()
                if not left:
                    conn.execute(sa.delete(self.table).where(self.table.c.owner == owner.owner))
                return int(n or 0)

        for owner in gone:
            n = retrying(functools.partial(reap_one, owner), what="taking over claims")
            taken[owner] = n
            if n:
                logger.warning(
                    "took over {} claim(s) of {} ({})",
                    n,
                    owner.describe(),
                    owner.state(self.identity, now),
                )
        return taken


def read_owners(store: SqlStore, conn: Connection | None = None) -> list[OwnerInfo]:
    """The processes registered on `store`."""
    t = store.schema.processes

    def read(c: Connection) -> list[OwnerInfo]:
        return [
            OwnerInfo(
                owner=r.owner,
                identity=ProcessIdentity(r.host, r.boot_id, int(r.pid), r.started),
                expires=float(r.expires),
                shares_work=bool(r.shares_work),
                name=r.name,
            )
            for r in c.execute(sa.select(t).order_by(t.c.owner))
        ]

    if conn is not None:
        return read(conn)
    with store.read() as c:
        return read(c)


class Claims:
    """The claims of one engine (`kind`) of one process (its `Lease`) on one store."""

    def __init__(self, lease: Lease, kind: str):
        self.lease = lease
        self.store = lease.store
        self.kind = kind
        self.table = self.store.schema.claims
        self._where_stmts: dict[tuple[Any, ...], Any] = {}

    @property
    def owner(self) -> str:
        return self.lease.owner

    def claim(self, keys: Iterable[ClaimKey], where: RowFilter | None = None) -> set[ClaimKey]:
        """Claim what no process holds, in a transaction of its own; returns what it got
        (`where` as for `claim_in`)."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        self.lease.start_heartbeat()
        tries = 0

        def run() -> set[ClaimKey]:
            nonlocal tries
            tries += 1
            with self.store.write() as conn:
                return self.claim_in(conn, wanted, adopt_own=tries > 1, where=where)

        return retrying(run, what="claiming objects")

    def claim_in(
        self,
        conn: Connection,
        keys: Iterable[ClaimKey],
        *,
        adopt_own: bool = False,
        where: RowFilter | None = None,
    ) -> set[ClaimKey]:
        """Claim what no process holds, inside `conn`; returns the keys obtained.

        The lease must be registered first (`lease.start_heartbeat()`, outside `conn`).
        `adopt_own` also returns keys this owner already holds (not abandoned): for a retry
        whose earlier try may have committed without the answer reaching us.

        With `where` (conditions on a key's row in its root table, e.g. "still pending"),
        keys whose rows do not meet them are not claimed: an object another process finished
        meanwhile costs no claim, re-read and release. The conditions see the statement's
        snapshot, so a caller that must know the row's latest state still re-reads what it
        obtained. `where` is called once per root table and its statement kept: pass the
        same function each time.

        A key this owner already holds (an abandoned call still running) is not returned:
        it is busy. Keys go in sorted order, so that two processes claiming overlapping
        batches take their row locks in the same order and never wait on each other in a
        cycle.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        got: set[ClaimKey] = set()
        if where is not None:
            for root, group in itertools.groupby(wanted, key=lambda k: k[0]):
                ids = [i for _, i in group]
                for start in range(0, len(ids), _CHUNK):
                    found = self._claim_rows(conn, root, where, ids[start : start + _CHUNK])
                    got |= {(root, i) for i in found}
        else:
            stmt = self._claim_stmt
            for start in range(0, len(wanted), _CHUNK):
                rows = [
                    {
                        "kind": self.kind,
                        "root": r,
                        "obj_id": i,
                        "owner": self.owner,
                        "abandoned": False,
                    }
                    for r, i in wanted[start : start + _CHUNK]
                ]
                got |= {(str(r.root), int(r.obj_id)) for r in conn.execute(stmt, rows)}
        if adopt_own and len(got) < len(wanted):
            t = self.table
            mine = conn.execute(
                sa.select(t.c.root, t.c.obj_id).where(
                    t.c.kind == self.kind, t.c.owner == self.owner, t.c.abandoned == sa.false()
                )
            )
            got |= {(str(r.root), int(r.obj_id)) for r in mine} & set(wanted)
        return got

    def claim_all(self, root: str, where: RowFilter) -> set[int]:
        """Claim every row of `root`'s table that meets `where` and that no process holds,
        with one statement in a transaction of its own; returns the ids obtained.

        For an engine that takes all of its work at once (the policy engine's pass), where
        one `claim_in` per few hundred keys would cost more than the work. The statement
        sees a snapshot, as with `claim_in`: the caller reads its rows afterwards (a read
        after the claim sees whatever another process finished before it released the row).
        Rows go in id order (see `claim_in`); `where` is used as for `claim_in`.
        """
        self.lease.start_heartbeat()
        tries = 0

        def run() -> set[int]:
            nonlocal tries
            tries += 1
            with self.store.write(durable=False) as conn:
                got = self._claim_rows(conn, root, where)
                if tries > 1:  # an earlier try may have committed without the answer
                    t = self.table
                    mine = conn.execute(
                        sa.select(t.c.obj_id).where(
                            t.c.kind == self.kind,
                            t.c.owner == self.owner,
                            t.c.root == root,
                            t.c.abandoned == sa.false(),
                        )
                    )
                    got |= {int(r.obj_id) for r in mine}
                return got

        return retrying(run, what="claiming objects")

    def _claim_rows(
        self, conn: Connection, root: str, where: RowFilter, ids: Sequence[int] | None = None
    ) -> set[int]:
        """Claim the rows of `root` that meet `where` (with `ids`, only those) and that
        nobody holds, inside `conn`; the ids obtained. The statement has the kind, root and
        owner as parameters: built once per claims, compiled once for every owner."""
        key = ("claim-rows", ids is not None, root, where)
        stmt = self._where_stmts.get(key)
        if stmt is None:
            m = self.store.table(root)
            by_ids = [self.store.ids_match(m.c.id, "ids")] if ids is not None else []
            rows = (
                sa.select(
                    sa.bindparam("c_kind", type_=sa.String),
                    sa.bindparam("c_root", type_=sa.String),
                    m.c.id,
                    sa.bindparam("c_owner", type_=sa.String),
                )
                .add_columns(sa.false())
                .where(*by_ids, *where(m))
                .order_by(m.c.id)
            )
            stmt = self._where_stmts[key] = self._insert_claims(rows)
        params = {"c_kind": self.kind, "c_root": root, "c_owner": self.owner}
        if ids is not None:
            params["ids"] = self.store.ids_value(ids)
        return {int(r[0]) for r in self.store.driver_rows(conn, key, stmt, params)}

    def _insert_claims(self, rows: sa.Select[Any]) -> Any:
        """Claims of the rows `rows` selects (kind, root, id, owner, abandoned) that nobody
        holds; returns the ids obtained."""
        t = self.table
        return (
            dialect_insert(self.store, t)
            .from_select(["kind", "root", "obj_id", "owner", "abandoned"], rows)
            .on_conflict_do_nothing()
            .returning(t.c.obj_id)
        )

    @functools.cached_property
    def _one(self) -> sa.ColumnElement[bool]:
        """A filter on one claim of this owner (one statement, executed for many keys)."""
        t = self.table
        return sa.and_(
            t.c.kind == self.kind,
            t.c.owner == self.owner,
            t.c.root == sa.bindparam("k_root"),
            t.c.obj_id == sa.bindparam("k_obj_id"),
        )

    @functools.cached_property
    def _abandon_stmt(self) -> sa.Update:
        return sa.update(self.table).where(self._one).values(abandoned=True)

    @functools.cached_property
    def _claim_stmt(self) -> Any:
        t = self.table
        return (
            dialect_insert(self.store, t).on_conflict_do_nothing().returning(t.c.root, t.c.obj_id)
        )

    @staticmethod
    def _params(keys: Iterable[ClaimKey]) -> list[dict[str, Any]]:
        return [{"k_root": r, "k_obj_id": i} for r, i in sorted(set(keys))]

    def release(self, keys: Iterable[ClaimKey], conn: Connection | None = None) -> None:
        """Drop these claims; inside `conn` (the outcome transaction) when given."""
        todo = sorted(set(keys))
        if not todo:
            return
        if conn is not None:
            self.store.write_by_keys(conn, self.release_write(todo))
            return

        def run() -> None:
            with self.store.write() as c:
                self.release(todo, c)

        retrying(run, what="releasing claims")

    def release_write(self, keys: Iterable[ClaimKey]) -> KeyedWrite:
        """Dropping these claims, as a write for `SqlStore.write_batch` (keys in order)."""
        rows = [{"root": r, "obj_id": i} for r, i in sorted(set(keys))]
        mine = {"kind": self.kind, "owner": self.owner}
        return KeyedWrite(self.table, ("root", "obj_id"), rows, where=mine)

    def mark_abandoned(self, keys: Iterable[ClaimKey], conn: Connection) -> None:
        """Keep these claims while their timed-out calls run on; `status` shows them."""
        params = self._params(keys)
        if params:
            key = ("abandon", self.kind, self.owner)
            self.store.execute_each(conn, key, self._abandon_stmt, params)

    def release_all(self, keep: Iterable[ClaimKey] = ()) -> None:
        """Drop every claim of this kind and owner except `keep` (calls still running)."""
        t = self.table
        kept = sorted(set(keep))

        def run() -> None:
            with self.store.write() as conn:
                q = sa.delete(t).where(t.c.kind == self.kind, t.c.owner == self.owner)
                if kept:
                    q = q.where(sa.tuple_(t.c.root, t.c.obj_id).not_in(kept))
                conn.execute(q)

        retrying(run, what="releasing claims")

    def holders(self, keys: Iterable[ClaimKey]) -> dict[ClaimKey, str]:
        """Who holds each of `keys` now (keys nobody holds are absent)."""
        todo = sorted(set(keys))
        t = self.table
        out: dict[ClaimKey, str] = {}
        with self.store.read() as conn:
            for start in range(0, len(todo), _CHUNK):
                q = sa.select(t.c.root, t.c.obj_id, t.c.owner).where(
                    t.c.kind == self.kind,
                    sa.tuple_(t.c.root, t.c.obj_id).in_(todo[start : start + _CHUNK]),
                )
                out.update({(str(r.root), int(r.obj_id)): str(r.owner) for r in conn.execute(q)})
        return out


@attrs.frozen
class HeldClaims:
    """What one process holds on a store: claims per engine, and abandoned calls."""

    owner: str
    process: OwnerInfo | None
    kind: str
    count: int
    abandoned: int

    def describe(self) -> str:
        if self.process is None:
            return f"an unregistered process ({self.owner})"
        return self.process.describe()


def held_claims(store: SqlStore) -> list[HeldClaims]:
    """Every process's claims on `store`, by owner and engine (for `status`, `--until-idle`)."""
    c = store.schema.claims
    abandoned = sa.func.sum(sa.case((c.c.abandoned == sa.true(), 1), else_=0))
    q = (
        sa.select(c.c.owner, c.c.kind, sa.func.count(), abandoned)
        .group_by(c.c.owner, c.c.kind)
        .order_by(c.c.owner, c.c.kind)
    )
    with store.read() as conn:
        owners = {o.owner: o for o in read_owners(store, conn)}
        rows = list(conn.execute(q))
    return [
        HeldClaims(str(owner), owners.get(str(owner)), str(kind), int(n), int(a or 0))
        for owner, kind, n, a in rows
    ]
