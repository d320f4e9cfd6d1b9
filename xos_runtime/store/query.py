"""Managers and query sets: `Site.objects.filter(name="x")`, as XOS plugins write them.

A `QuerySet` is lazy and immutable: `filter()`/`exclude()`/`order_by()` return new ones, and
the rows are read once, on first use (`len`, iteration, indexing). Lookups are equality by
default; `field__in`, `__ne`, `__gt`, `__gte`, `__lt`, `__lte`, `__isnull`, `__contains` and
`__startswith` are there for the few places plugins need more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

import sqlalchemy as sa

from xos_runtime.exceptions import (
    DoesNotExist,
    MultipleObjectsReturned,
    ObjectValidationError,
    StoreError,
)

if TYPE_CHECKING:
    from xos_runtime.store.objects import ModelObject

_LOOKUPS: dict[str, Callable[[sa.ColumnElement[Any], Any], sa.ColumnElement[bool]]] = {
    "exact": lambda c, v: c.is_(None) if v is None else c == v,
    "ne": lambda c, v: c.is_distinct_from(v),  # NULL differs from every value
    "in": lambda c, v: c.in_(list(v)),
    "gt": lambda c, v: c > v,
    "gte": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v,
    "isnull": lambda c, v: c.is_(None) if v else c.is_not(None),
    "contains": lambda c, v: c.contains(v, autoescape=True),
    "startswith": lambda c, v: c.startswith(v, autoescape=True),
}


def _plain(value: Any) -> Any:
    """A linked object given as a filter value stands for its id."""
    if hasattr(value, "_meta") and hasattr(value, "id"):
        return value.id
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


_O = TypeVar("_O", bound="ModelObject")


class FetchedSet(Sequence[_O]):
    """The list face of a query set: whatever `_fetch()` reads, once (a local query set
    from the store, a remote one from a core)."""

    _cls: type[_O]

    def _fetch(self) -> list[_O]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._fetch())

    def __iter__(self) -> Iterator[_O]:
        return iter(self._fetch())

    @overload
    def __getitem__(self, index: int) -> _O: ...

    @overload
    def __getitem__(self, index: slice) -> list[_O]: ...

    def __getitem__(self, index: int | slice) -> _O | list[_O]:
        return self._fetch()[index]

    def __bool__(self) -> bool:
        return bool(self._fetch())

    def __repr__(self) -> str:
        return f"<QuerySet {self._cls._meta.name} {list(self._fetch())!r}>"


class QuerySet(FetchedSet["ModelObject"]):
    """Objects of one model (and its sub-models) matching some conditions."""

    def __init__(
        self,
        cls: type[ModelObject],
        where: tuple[sa.ColumnElement[bool], ...] = (),
        *,
        deleted: bool | None = False,
        order: tuple[sa.ColumnElement[Any], ...] = (),
    ):
        self._cls = cls
        self._where = where
        self._deleted = deleted
        self._order = order
        self._cache: list[ModelObject] | None = None

    # -- building --------------------------------------------------------------------------

    def _conditions(self, kwargs: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
        meta = self._cls._meta
        table = meta.store.table(meta.name)
        out: list[sa.ColumnElement[bool]] = []
        for key, value in kwargs.items():
            name, _, op = key.partition("__")
            op = op or "exact"
            if op not in _LOOKUPS:
                raise ObjectValidationError(
                    f"{meta.name}: unknown lookup {key!r}; use one of {', '.join(_LOOKUPS)}"
                )
            column = meta.column_for(name)
            out.append(_LOOKUPS[op](table.c[column], _plain(value)))
        return out

    def _clone(self, **changes: Any) -> QuerySet:
        args: dict[str, Any] = {
            "where": self._where,
            "deleted": self._deleted,
            "order": self._order,
        }
        args.update(changes)
        return QuerySet(self._cls, **args)

    def all(self) -> QuerySet:
        return self._clone()

    def filter(self, **kwargs: Any) -> QuerySet:
        return self._clone(where=(*self._where, *self._conditions(kwargs)))

    def exclude(self, **kwargs: Any) -> QuerySet:
        conds = self._conditions(kwargs)
        if not conds:
            return self._clone()
        # Django semantics: a row whose field is NULL does not match `field=value`, so it is
        # kept; plain NOT(...) would drop it (SQL's NOT NULL is NULL).
        matched = sa.func.coalesce(sa.and_(*conds), sa.false())
        return self._clone(where=(*self._where, sa.not_(matched)))

    def order_by(self, *names: str) -> QuerySet:
        meta = self._cls._meta
        table = meta.store.table(meta.name)
        order: list[sa.ColumnElement[Any]] = []
        for name in names:
            desc = name.startswith("-")
            col = table.c[meta.column_for(name.lstrip("-"))]
            order.append(col.desc() if desc else col.asc())
        return self._clone(order=tuple(order))

    # -- reading -----------------------------------------------------------------------------

    def _all_conditions(self) -> list[sa.ColumnElement[bool]]:
        meta = self._cls._meta
        table = meta.store.table(meta.name)
        conds = list(self._where)
        if self._deleted is not None:
            conds.append(
                table.c.deleted == sa.true() if self._deleted else table.c.deleted == sa.false()
            )
        return conds

    def _fetch(self) -> list[ModelObject]:
        if self._cache is None:
            meta = self._cls._meta
            rows = meta.store.select(meta.name, self._all_conditions(), order_by=self._order)
            self._cache = [self._cls._from_row(r) for r in rows]
        return self._cache

    def count(self, *_value: object) -> int:
        """The number of matching rows (one COUNT query unless the rows were read)."""
        if self._cache is not None:
            return len(self._cache)
        meta = self._cls._meta
        return meta.store.count(meta.name, self._all_conditions())

    def exists(self) -> bool:
        return self.first() is not None

    def first(self) -> ModelObject | None:
        if self._cache is not None:
            return self._cache[0] if self._cache else None
        meta = self._cls._meta
        rows = meta.store.select(meta.name, self._all_conditions(), order_by=self._order, limit=1)
        return self._cls._from_row(rows[0]) if rows else None

    def get(self, **kwargs: Any) -> ModelObject:
        qs = self.filter(**kwargs) if kwargs else self
        meta = self._cls._meta
        rows = meta.store.select(meta.name, qs._all_conditions(), limit=2)
        if not rows:
            what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "any"
            raise DoesNotExist(f"{meta.name} matching {what} does not exist")
        if len(rows) > 1:
            what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise MultipleObjectsReturned(f"more than one {meta.name} matches {what}")
        return self._cls._from_row(rows[0])


class _Queries(Protocol):
    """What a manager asks of its query sets (the local `QuerySet`, or a core's)."""

    def filter(self, **kwargs: Any) -> Any: ...
    def exclude(self, **kwargs: Any) -> Any: ...
    def order_by(self, *names: str) -> Any: ...
    def get(self, **kwargs: Any) -> Any: ...
    def first(self) -> Any: ...
    def count(self) -> int: ...
    def exists(self) -> bool: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


_QS = TypeVar("_QS", bound=_Queries)
_Obj = TypeVar("_Obj", bound="ModelObject")


class ManagerFace(Generic[_QS, _Obj]):
    """The Django-like face of a manager, over the query set `_qs()` makes: one definition
    for the local store's managers and a core's (`store/remote/query.py`)."""

    _cls: type[_Obj]
    _creates: dict[str, Any]

    def _qs(self) -> _QS:
        raise NotImplementedError

    def all(self) -> _QS:
        return self._qs()

    def filter(self, **kwargs: Any) -> _QS:
        result: _QS = self._qs().filter(**kwargs)
        return result

    def exclude(self, **kwargs: Any) -> _QS:
        result: _QS = self._qs().exclude(**kwargs)
        return result

    def order_by(self, *names: str) -> _QS:
        result: _QS = self._qs().order_by(*names)
        return result

    def get(self, **kwargs: Any) -> _Obj:
        found: _Obj = self._qs().get(**kwargs)
        return found

    def first(self) -> _Obj | None:
        found: _Obj | None = self._qs().first()
        return found

    def count(self) -> int:
        return self._qs().count()

    def exists(self) -> bool:
        return self._qs().exists()

    def create(self, **fields: Any) -> _Obj:
        obj = self._cls(**{**self._creates, **fields})
        obj.save()
        return obj

    def __iter__(self) -> Iterator[_Obj]:
        return iter(self._qs())

    def __len__(self) -> int:
        return len(self._qs())


class Manager(ManagerFace[QuerySet, "ModelObject"]):
    """`Model.objects` (live rows), `Model.deleted_objects`, and reverse-link managers."""

    def __init__(
        self,
        cls: type[ModelObject],
        *,
        deleted: bool | None = False,
        where: tuple[sa.ColumnElement[bool], ...] = (),
        creates: dict[str, Any] | None = None,
    ):
        self._cls = cls
        self._deleted = deleted
        self._base_where = where
        self._creates = creates or {}

    def _qs(self) -> QuerySet:
        return QuerySet(self._cls, self._base_where, deleted=self._deleted)

    def bulk_create(self, objects: Iterable[Mapping[str, Any] | ModelObject]) -> list[ModelObject]:
        """Create many objects (field dicts, or new objects of this model) in one transaction
        with one change notification, and return them with their ids: for seeding a store
        (one `create` per object commits once per object). Every object is checked before
        anything is written; a refused one writes none of them."""
        made = [
            self._cls(**{**self._creates, **o}) if isinstance(o, Mapping) else o for o in objects
        ]
        for obj in made:
            if not obj.is_new:
                raise StoreError(f"bulk_create: {obj._meta.name} id {obj.id} is already stored")
        rows = [obj._insert_values() for obj in made]
        if not made:
            return made
        store = self._cls._meta.store
        touched = set(store.touched_names({obj._meta.name for obj in made}))
        by_model: dict[str, list[int]] = {}
        for i, obj in enumerate(made):
            by_model.setdefault(obj._meta.name, []).append(i)
        ids = [0] * len(made)
        with store.write(touched) as conn:
            for name, positions in by_model.items():
                new = store.insert_many(name, [rows[i] for i in positions], conn)
                for i, new_id in zip(positions, new, strict=True):
                    ids[i] = new_id
        for obj, row, new_id in zip(made, rows, ids, strict=True):
            obj._inserted(row, new_id)
        return made
