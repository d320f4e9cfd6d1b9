"""Query sets and managers of a remote accessor: `Site.objects.filter(name="x")` over a core.

The same API as the local ones (`store.query`). Equality filters the core's list takes
(`?name=x&site_id=2`) are sent to it; the other lookups (`__in`, `__gt`, ..., `exclude`,
`order_by`) are applied here to the rows it returned, with the store's semantics (a NULL
matches no comparison; `exclude` keeps rows whose field is NULL). `deleted_objects` reads
the deleted rows awaiting their `delete_record` (`.../pending?deleted=true`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from xos_runtime.exceptions import DoesNotExist, MultipleObjectsReturned, ObjectValidationError
from xos_runtime.store.query import FetchedSet, ManagerFace

if TYPE_CHECKING:
    from xos_runtime.store.remote.objects import RemoteObject

__all__ = ["RemoteManager", "RemoteQuerySet"]


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(have: Any, want: Any) -> bool:
        return have is not None and want is not None and op(have, want)

    return check


_LOOKUPS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda have, want: have == want if want is not None else have is None,
    "ne": lambda have, want: have != want,
    "in": lambda have, want: have is not None and have in want,
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "isnull": lambda have, want: (have is None) == bool(want),
    "contains": lambda have, want: isinstance(have, str) and str(want) in have,
    "startswith": lambda have, want: isinstance(have, str) and have.startswith(str(want)),
}

#: One condition: (column, lookup, value).
Condition = tuple[str, str, Any]


def _plain(value: Any) -> Any:
    """A linked object given as a filter value stands for its id."""
    if hasattr(value, "_meta") and hasattr(value, "id"):
        return value.id
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _as_text(value: Any) -> str | None:
    """How the core's list filter spells `value` (`store.parse_text`), or None when it
    cannot say it exactly (then the filter is applied here)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str) and value != "null" and "\x00" not in value:
        return value
    return None


def _matches(row: Mapping[str, Any], conditions: Iterable[Condition]) -> bool:
    return all(_LOOKUPS[op](row.get(column), value) for column, op, value in conditions)


class RemoteQuerySet(FetchedSet["RemoteObject"]):
    """Objects of one model (and its sub-models) matching some conditions, read from a core
    once, on first use."""

    def __init__(
        self,
        cls: type[RemoteObject],
        *,
        deleted: bool | None = False,
        conditions: tuple[Condition, ...] = (),
        excluded: tuple[tuple[Condition, ...], ...] = (),
        order: tuple[tuple[str, bool], ...] = (),
    ):
        self._cls = cls
        self._deleted = deleted
        self._conditions = conditions
        self._excluded = excluded
        self._order = order
        self._cache: list[RemoteObject] | None = None

    # -- building --------------------------------------------------------------------------

    def _parse(self, kwargs: Mapping[str, Any]) -> tuple[Condition, ...]:
        meta = self._cls._meta
        out: list[Condition] = []
        for key, value in kwargs.items():
            name, _, op = key.partition("__")
            op = op or "exact"
            if op not in _LOOKUPS:
                raise ObjectValidationError(
                    f"{meta.name}: unknown lookup {key!r}; use one of {', '.join(_LOOKUPS)}"
                )
            out.append((meta.column_for(name), op, _plain(value)))
        return tuple(out)

    def _clone(self, **changes: Any) -> RemoteQuerySet:
        args: dict[str, Any] = {
            "deleted": self._deleted,
            "conditions": self._conditions,
            "excluded": self._excluded,
            "order": self._order,
        }
        args.update(changes)
        return RemoteQuerySet(self._cls, **args)

    def all(self) -> RemoteQuerySet:
        return self._clone()

    def filter(self, **kwargs: Any) -> RemoteQuerySet:
        return self._clone(conditions=(*self._conditions, *self._parse(kwargs)))

    def exclude(self, **kwargs: Any) -> RemoteQuerySet:
        conds = self._parse(kwargs)
        if not conds:
            return self._clone()
        return self._clone(excluded=(*self._excluded, conds))

    def order_by(self, *names: str) -> RemoteQuerySet:
        meta = self._cls._meta
        order = tuple((meta.column_for(n.lstrip("-")), n.startswith("-")) for n in names)
        return self._clone(order=order)

    # -- reading -----------------------------------------------------------------------------

    def _split(self) -> tuple[dict[str, str], list[Condition]]:
        """The conditions the core filters by (query parameters) and those applied here."""
        params: dict[str, str] = {}
        local: list[Condition] = []
        for column, op, value in self._conditions:
            text = _as_text(value) if op == "exact" and self._deleted is False else None
            if text is None or column in params:
                local.append((column, op, value))
            else:
                params[column] = text
        return params, local

    def _rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        cls = self._cls
        params, local = self._split()
        rows: list[dict[str, Any]]
        if self._deleted is False:
            if limit is not None and not local and not self._excluded and not self._order:
                params = {**params, "page": "1", "page_size": str(limit)}
            rows = cls._meta.remote.rows(cls._meta.name, params)
        elif self._deleted is True:
            rows = cls._meta.remote.deleted(cls._meta.name)
        else:
            rows = cls._meta.remote.live_or_deleted(cls._meta.name, self._conditions)
        rows = [
            r
            for r in rows
            if _matches(r, local) and not any(_matches(r, ex) for ex in self._excluded)
        ]
        for column, descending in reversed(self._order):
            rows.sort(
                key=lambda r, c=column: (r.get(c) is not None, r.get(c)),  # type: ignore[misc]
                reverse=descending,
            )
        return rows if limit is None else rows[:limit]

    def _fetch(self) -> list[RemoteObject]:
        if self._cache is None:
            self._cache = [self._cls._from_json(r) for r in self._rows()]
        return self._cache

    def count(self, *_value: object) -> int:
        """The number of matching rows (read from the core: it has no count of its own)."""
        return len(self._fetch())

    def exists(self) -> bool:
        return self.first() is not None

    def first(self) -> RemoteObject | None:
        if self._cache is not None:
            return self._cache[0] if self._cache else None
        rows = self._rows(limit=1)
        return self._cls._from_json(rows[0]) if rows else None

    def get(self, **kwargs: Any) -> RemoteObject:
        qs = self.filter(**kwargs) if kwargs else self
        rows = qs._rows(limit=2)
        name = self._cls._meta.name
        if not rows:
            what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "any"
            raise DoesNotExist(f"{name} matching {what} does not exist")
        if len(rows) > 1:
            what = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise MultipleObjectsReturned(f"more than one {name} matches {what}")
        return self._cls._from_json(rows[0])


class RemoteManager(ManagerFace[RemoteQuerySet, "RemoteObject"]):
    """`Model.objects`, `Model.deleted_objects` and reverse-link managers over a core."""

    def __init__(
        self,
        cls: type[RemoteObject],
        *,
        deleted: bool | None = False,
        creates: dict[str, Any] | None = None,
    ):
        self._cls = cls
        self._deleted = deleted
        self._creates = creates or {}

    def _qs(self) -> RemoteQuerySet:
        qs = RemoteQuerySet(self._cls, deleted=self._deleted)
        return qs.filter(**self._creates) if self._creates else qs

    def bulk_create(self, objects: Iterable[Mapping[str, Any] | RemoteObject]) -> list[Any]:
        """Create each object in turn (over a core, one request each, not one transaction)."""
        made = [
            self._cls(**{**self._creates, **o}) if isinstance(o, Mapping) else o for o in objects
        ]
        for obj in made:
            obj.save()
        return made
