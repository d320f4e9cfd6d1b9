"""The model accessor: what plugins receive as `self.model_accessor`.

`accessor.Site` is the model class of `Site` (with `.objects` and `.deleted_objects`); the
accessor also answers the engines' questions, above all "what is pending?", with one query per
observed model rather than one per object.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from xos_runtime.exceptions import StoreError
from xos_runtime.models.definitions import ModelSet
from xos_runtime.store.attempts import EventAttempts
from xos_runtime.store.claims import Claims, HeldClaims, Lease, held_claims
from xos_runtime.store.classes import ModelClasses
from xos_runtime.store.foreign import refuse_foreign_sqlite
from xos_runtime.store.notify import Subscription
from xos_runtime.store.objects import ModelObject, build_model_class
from xos_runtime.store.schedule import Schedule
from xos_runtime.store.sqlstore import SqlStore

if TYPE_CHECKING:
    from xos_runtime.store.outcomes import ClaimResult, OutcomeBatch

#: `publish(topic, key, value, headers)`, as `EventBus.publish`.
EventPublisher = Callable[
    [str, bytes | str | None, bytes | str | None, Sequence[tuple[str, bytes]]],
    tuple[int, int] | None,
]


def _older(version: sa.Column[Any], *changes: sa.Column[Any]) -> sa.ColumnElement[bool]:
    """`version` (enacted, policed) is unset or older than one of the change timestamps.

    SQL NULL semantics keep XOS's rule: an unset change timestamp never makes a row pending.
    """
    return sa.or_(version.is_(None), *(version < change for change in changes))


def _to_sync(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [
        t.c.deleted == sa.false(),
        t.c.lazy_blocked == sa.false(),
        t.c.no_sync == sa.false(),
        _older(t.c.enacted, t.c.updated, t.c.changed_by_policy),
    ]


def _to_delete(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [t.c.deleted == sa.true()]


def _to_police(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [
        t.c.deleted == sa.false(),
        t.c.no_policy == sa.false(),
        _older(t.c.policed, t.c.updated, t.c.changed_by_step),
    ]


def _to_police_deletion(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [t.c.deleted == sa.true(), _older(t.c.policed, t.c.updated)]


def policy_pending(deleted: bool) -> Callable[[sa.Table], list[sa.ColumnElement[bool]]]:
    """What makes a row pending for model policies (changed since policed) or, with
    `deleted`, for their `handle_delete`: as `sync_pending`, for `fetch_policy_pending` and
    for the policy engine's claims."""
    return _to_police_deletion if deleted else _to_police


def _to_police_any(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    return [sa.or_(sa.and_(*_to_police(t)), sa.and_(*_to_police_deletion(t)))]


def policy_work(t: sa.Table) -> list[sa.ColumnElement[bool]]:
    """What makes a row pending for model policies, deleted or not: `policy_pending(False)`
    or `policy_pending(True)`, in one condition (for reads and claims of a whole pass)."""
    return _to_police_any(t)


def sync_pending(deleted: bool) -> Callable[[sa.Table], list[sa.ColumnElement[bool]]]:
    """What makes a row pending for sync steps (changed since enacted) or, with `deleted`,
    for their `delete_record`: conditions on a table, for `fetch_pending` and for claims
    that must skip what another process finished (the same function object every time)."""
    return _to_delete if deleted else _to_sync


class ModelAccessor(ModelClasses[ModelObject]):
    """Model classes by name over one store, plus the queries engines need."""

    def __init__(self, store: SqlStore):
        self.store = store
        #: Where `publish_event` sends: the bus of the config the accessor was opened for
        #: (set by the host), else None, the store's own log.
        self.event_publisher: EventPublisher | None = None
        self._work_filters: dict[
            tuple[str, ...], dict[str, Callable[[sa.Table], list[sa.ColumnElement[bool]]]]
        ] = {}
        self._build_all()

    def _make_class(self, name: str, parent: type[ModelObject] | None) -> type[ModelObject]:
        return build_model_class(name, self, parent)

    @property
    def models(self) -> ModelSet:
        return self.store.models

    def evolve(self, models: ModelSet) -> None:
        """Serve `models` from now on: the store evolves (`SqlStore.evolve`, refusing what
        opening would refuse) and every model class is built anew. Classes and objects
        taken before keep the old definitions."""
        self.store.evolve(models)
        classes = self._classes
        try:
            self._build_all()
        except BaseException:
            self._classes = classes
            raise

    def check_db_connection_okay(self) -> bool:
        with self.store.read() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True

    def now(self) -> float:
        return self.store.clock()

    def reset_queries(self) -> None:
        """XOS compatibility: nothing to reset here."""

    def journal_object(self, obj: Any, action: str, msg: str = "", *_a: Any) -> None:
        """XOS compatibility: the runtime records outcomes through hooks and logs instead."""

    def obj_exists(self, obj: ModelObject) -> bool:
        return obj.id is not None

    def obj_in_list(self, obj: ModelObject, objs: Iterable[ModelObject]) -> bool:
        return any(o.id == obj.id for o in objs)

    def create_obj(self, cls: type[ModelObject], **kwargs: Any) -> ModelObject:
        return cls(**kwargs)

    def publish_event(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int] | None:
        """Publish one message to the event bus, for event steps to handle; returns its
        `(partition, offset)` where the bus tells them.

        From a step (`self.model_accessor`) or an accessor of a config
        (`xos_runtime.connect("config.yaml")`), the message goes to the config's
        `event_bus`: the store's log (``store``, the default) or Kafka. From an accessor of a
        store URL (`xos_runtime.connect("sqlite:///store.db")`), to that store's log. A
        str key or value is encoded as UTF-8; `headers` are `(name, bytes)` pairs.

        On the store's log, inside `atomic()` the message is part of the block's
        transaction: it is kept only if the block commits (consumers on a SQLite file then
        see it at their next poll, within a second, rather than at once).
        """
        if self.event_publisher is not None:
            return self.event_publisher(topic, key, value, headers)
        return self.store.event_log.append(topic, key, value, headers)

    def subscribe(self) -> Subscription:
        """A subscription woken by every committed change of this store."""
        return self.store.hub.subscribe()

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """`with accessor.snapshot():` every read of this thread inside sees one committed
        state of the store (`SqlStore.snapshot`): for the engines' reads of what is pending
        and the rows their links lead to."""
        return self.store.snapshot()

    # -- what the pull and event engines keep in the store -----------------------------------

    def schedule(self, owner: str) -> Schedule:
        """The shared schedule of interval jobs (pull steps) as process `owner` takes its
        runs (a remote accessor's is the same over its core)."""
        return Schedule(self.store, owner)

    def event_attempts(self, group: str) -> EventAttempts:
        """The failed calls of the messages of consumer group `group`."""
        return EventAttempts(self.store, group)

    # -- pending work ---------------------------------------------------------------------------

    def _pending(
        self,
        model_names: Iterable[str],
        conditions: Callable[[sa.Table], list[sa.ColumnElement[bool]]],
        limit: int | None = None,
    ) -> list[ModelObject]:
        seen: set[tuple[str, int]] = set()
        out: list[ModelObject] = []
        for name in model_names:
            cls = self.get_model_class(name)
            root = self.store.models.root(name)
            where = conditions(self.store.table(name))
            keys, rows = self.store.select_rows(name, where, limit=limit)
            reader = cls._meta.reader(keys)
            at = reader.index["id"]
            for row in rows:
                key = (root, row[at])
                if key not in seen:
                    seen.add(key)
                    out.append(cls._from_values(reader, row))
        return out

    def atomic(self) -> contextlib.AbstractContextManager[None]:
        """`with accessor.atomic():` every save, create and delete of this thread inside is
        one transaction with one change notification; an exception inside rolls all of it
        back and propagates. Nested blocks join the outer one."""
        return self.store.atomic()

    def fetch_pending(self, model_names: Iterable[str], deleted: bool = False) -> list[ModelObject]:
        """Objects to sync (changed since enacted) or, with `deleted`, to delete (reference 1.4)."""
        if isinstance(model_names, str):
            model_names = [model_names]
        return self._pending(model_names, sync_pending(deleted))

    def fetch_policy_pending(
        self, model_names: Iterable[str], deleted: bool = False
    ) -> list[ModelObject]:
        """Objects to police (changed since policed), or deleted ones awaiting handle_delete."""
        if isinstance(model_names, str):
            model_names = [model_names]
        return self._pending(model_names, policy_pending(deleted))

    def pending_page(
        self, model: str, *, policy: bool, deleted: bool, after: int, limit: int
    ) -> list[ModelObject]:
        """A page of `fetch_pending` (`policy`: of `fetch_policy_pending`) of one model: its
        objects with ids above `after`, at most `limit`, in id order. A core answers a
        remote engine's pending reads by pages, so that a large pass costs it one page of
        objects at a time (a page read after an object became pending finds it; one read
        before finds it in the next pass, as a single read would)."""
        pending = policy_pending(deleted) if policy else sync_pending(deleted)
        return self._pending([model], lambda t: [*pending(t), t.c.id > after], limit=limit)

    def policy_work_filters(
        self, model_names: Iterable[str]
    ) -> dict[str, Callable[[sa.Table], list[sa.ColumnElement[bool]]]]:
        """By root model, the condition on its table's rows that model policies of
        `model_names` have to handle now (`policy_work`, kept to those models and their
        sub-models): for the policy engine's claims and reads. The same function objects
        every time for the same names (statements are kept by them)."""
        key = tuple(sorted(set(model_names)))
        found = self._work_filters.get(key)
        if found is not None:
            return found
        by_root: dict[str, list[str]] = {}
        for name in key:
            by_root.setdefault(self.store.models.root(name), []).append(name)
        found = {}
        for root, names in by_root.items():
            if root in names:
                found[root] = policy_work
                continue
            family = sorted({m for name in names for m in self.store.models.descendants(name)})

            def kept(t: sa.Table, family: list[str] = family) -> list[sa.ColumnElement[bool]]:
                # one bound value per model, not an expanding IN: the statements are kept
                # compiled and run on the driver's cursor
                of = sa.or_(*(t.c.leaf_model_name == m for m in family))
                return [of, *policy_work(t)]

            found[root] = kept
        self._work_filters[key] = found
        return found

    def claim_policy_work(self, claims: Claims, model_names: Iterable[str]) -> dict[str, set[int]]:
        """Claim everything model policies of `model_names` have to handle now
        (`policy_work_filters`) that no process holds: ids by root model (the policy
        engine's pass takes all of its work at once, `Claims.claim_all`)."""
        return {
            root: claims.claim_all(root, where)
            for root, where in self.policy_work_filters(model_names).items()
        }

    def fetch_policy_work(
        self, model_names: Iterable[str], only: Mapping[str, Container[int]] | None = None
    ) -> tuple[list[ModelObject], list[tuple[str, int]]]:
        """Everything model policies of `model_names` have to handle now
        (`policy_work_filters`): the objects changed since policed and the deleted ones
        awaiting `handle_delete`, as their most derived objects, one query per table (for
        the policy engine's pass: tens of thousands of objects at once). With `only` (ids by
        root model), rows of other ids are not made into objects: their keys come second
        (another process holds them)."""
        objects: list[ModelObject] = []
        others: list[tuple[str, int]] = []
        for root, where in self.policy_work_filters(model_names).items():
            table = self.store.table(root)
            keys, rows = self.store.select_many(root, where, where(table))
            at_id, at_leaf = keys.index("id"), keys.index("leaf_model_name")
            wanted = only.get(root, ()) if only is not None else None
            by_leaf: dict[str, list[Sequence[Any]]] = {}
            for row in rows:
                if wanted is not None and row[at_id] not in wanted:
                    others.append((root, int(row[at_id])))
                    continue
                leaf = row[at_leaf] or root
                found = by_leaf.get(leaf)
                if found is None:
                    found = by_leaf[leaf] = []
                found.append(row)
            for leaf, leaf_rows in by_leaf.items():
                cls = self.get_model_class(leaf)
                objects.extend(cls._many_from_values(cls._meta.reader(keys), leaf_rows))
        return objects, others

    def load_rows(
        self,
        keys: Iterable[tuple[str, int]],
        conn: Connection | None = None,
        columns: Sequence[str] = (),
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """Rows by `(root model, id)`, live or deleted, one query per hierarchy table.

        For engines that walk links or re-read what they claimed (inside `conn`, the claim's
        transaction, when given); missing rows are absent. With `columns` (`id` first), only
        those, read on the driver's cursor (`SqlStore.columns_by_id`: a re-read every batch),
        as the driver gives them (SQLite's bools as 0 and 1).
        """
        by_root: dict[str, list[int]] = {}
        for root, oid in keys:
            by_root.setdefault(root, []).append(oid)
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for root, ids in by_root.items():
            if columns:
                assert columns[0] == "id", columns
                with self.store.reading(conn) as c:
                    for t in self.store.columns_by_id(c, root, ids, tuple(columns)):
                        found[(root, int(t[0]))] = dict(zip(columns, t, strict=True))
                continue
            table = self.store.table(root)
            for row in self.store.select(root, [table.c.id.in_(ids)], conn=conn):
                found[(root, int(row["id"]))] = row
        return found

    #: Whether the store is a core over HTTP (`store.remote.RemoteAccessor`): never here.
    remote = False

    @property
    def shared(self) -> bool:
        """Whether other processes can open this store (every store but in-memory SQLite):
        a `run` on it registers a lease and claims its work."""
        store = self.store
        database = store.url.database
        return store.dialect != "sqlite" or bool(database and database != ":memory:")

    def held_claims(self) -> list[HeldClaims]:
        """Every process's claims on the store, by owner and engine (`status`, `--until-idle`)."""
        return held_claims(self.store)

    def count_with_code(self, code: int) -> int:
        """Objects (live or awaiting deletion) whose last sync or policy ended with `code`."""
        store = self.store
        total = 0
        with store.read() as conn:
            for table in store.schema.tables.values():
                q = (
                    sa.select(sa.func.count())
                    .select_from(table)
                    .where(sa.or_(table.c.backend_code == code, table.c.policy_code == code))
                )
                total += int(conn.execute(q).scalar_one())
        return total

    def lease(
        self,
        *,
        ttl: float = 60.0,
        shares_work: bool = True,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> Lease:
        """This process's registration on the store (`Lease`): made by the host of a `run`."""
        return Lease(self.store, ttl=ttl, shares_work=shares_work, name=name, clock=clock)

    def store_outcomes(
        self, batch: OutcomeBatch, claims: Claims | None = None
    ) -> ClaimResult | None:
        """Store an engine's `OutcomeBatch` in one atomic step (`store.outcomes.apply_batch`);
        a remote accessor sends it to its core instead."""
        from xos_runtime.store.outcomes import apply_batch  # (it builds on this module)

        return apply_batch(self, batch, claims)

    def purge(self, obj: ModelObject) -> None:
        """Remove a soft-deleted object for good (after its `delete_record` succeeded)."""
        if obj.id is None:
            return
        store = self.store
        leaf = obj.__dict__.get("leaf_model_name") or obj._meta.name
        touched = store.touched_names([leaf])
        with store.write(touched) as conn:
            store.purge(leaf, [obj.id], conn)

    def close(self) -> None:
        self.store.close()


def open_store(
    endpoint: str,
    models: ModelSet | None = None,
    *,
    clock: Callable[[], float] | None = None,
    dry_run: bool = False,
    models_optional: bool = False,
    keep_stored: bool = False,
) -> ModelAccessor:
    """Open (creating or evolving) the store at `endpoint` and return its accessor.

    `dry_run` only checks that the models fit what is stored; with `models_optional` a
    store with no models is opened too; `keep_stored` keeps the stored models `models`
    does not define (see `SqlStore`). A PostgreSQL
    URL without its driver installed (the `postgres` extra) is a `StoreError` that says
    what to install, not a bare `ModuleNotFoundError`.
    """
    refuse_foreign_sqlite(endpoint)
    try:
        store = SqlStore(
            endpoint,
            models,
            clock=clock,
            dry_run=dry_run,
            models_optional=models_optional,
            keep_stored=keep_stored,
        )
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _POSTGRES_DRIVERS:
            raise
        raise StoreError(
            f"accessor.endpoint: a PostgreSQL store needs its driver ({exc.name} is not "
            "installed): pip install 'xos-runtime[postgres]'"
        ) from None
    return ModelAccessor(store)


#: The driver modules SQLAlchemy imports for a `postgresql://` URL (psycopg 3 is the default).
_POSTGRES_DRIVERS = frozenset({"psycopg", "psycopg2", "psycopg_binary", "asyncpg", "pg8000"})
