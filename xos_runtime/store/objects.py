"""Model objects: instances of the classes the accessor builds from model definitions.

An object keeps its field values as plain attributes (`site.name`), its links as descriptors
(`user.site`, `user.site_id`, `site.users.all()`), and a snapshot of what it read from the
store. `save()` writes only what changed since that snapshot (or `update_fields`), so an engine
writing bookkeeping never overwrites a user's concurrent edit, and it applies the XOS rules
on which timestamp the save moves (see `tracking.py`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from sys import intern
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from xos_runtime.exceptions import ObjectValidationError, StoreError
from xos_runtime.models.definitions import Field, Link, ModelSet, is_bookkeeping
from xos_runtime.store.query import Manager, QuerySet
from xos_runtime.store.tracking import current_caller
from xos_runtime.store.values import check_value

if TYPE_CHECKING:
    from xos_runtime.store.accessor import ModelAccessor
    from xos_runtime.store.sqlstore import SqlStore

#: The identity of a row across sub-models: `(root model, id)` (`ModelObject.store_key`).
Key = tuple[str, int]

#: The row of an object whose row was dropped (`ModelObject.drop_row`).
_NO_ROW: Mapping[str, Any] = MappingProxyType({})


#: Bookkeeping columns with few distinct values (`ModelMeta.repeating`).
_REPEATING = ("leaf_model_name", "backend_status", "policy_status")


class Stored:
    """What the store holds for an object, column by column, as of its last read or write:
    what `save()` compares with. One list per object (a pass keeps many objects alive, and a
    dict per object costs three times the memory)."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: list[Any]):
        self._index = index
        self._values = values

    def get(self, column: str, default: Any = None) -> Any:
        i = self._index.get(column)
        return default if i is None else self._values[i]

    def update(self, values: Mapping[str, Any] = _NO_ROW, **more: Any) -> None:
        index, stored = self._index, self._values
        for source in (values, more) if more else (values,):
            for column, value in source.items():
                i = index.get(column)
                if i is not None:
                    stored[i] = value


class RowView(Mapping[str, Any]):
    """A row as read, by column name, over the values the driver returned (a dict per row
    costs four times the memory): what `ModelObject.fetched_row` gives for objects read
    in bulk."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: Sequence[Any]):
        self._index = index
        self._values = values

    def __getitem__(self, column: str) -> Any:
        return self._values[self._index[column]]

    def get(self, column: str, default: Any = None) -> Any:
        i = self._index.get(column)
        return default if i is None else self._values[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class RowReader:
    """How a model's objects are made from rows of one shape (the column names of a
    query's result): where each of the model's columns is among them. Missing columns
    (a row read through a base model lacks the sub-model's) read as unset."""

    def __init__(self, meta: ModelMeta, keys: Sequence[str]):
        self.index: dict[str, int] = {k: i for i, k in enumerate(keys)}
        positions = [self.index.get(c) for c in meta.columns]
        if None in positions:
            self.pick: Callable[[Sequence[Any]], Sequence[Any]] = lambda row: [
                None if i is None else row[i] for i in positions
            ]
        elif len(positions) == 1:
            only = positions[0]
            self.pick = lambda row: (row[only],)  # type: ignore[index]
        else:
            self.pick = operator.itemgetter(*positions)


class ModelMeta:
    """What a model class knows about its model: fields, links, columns, and its store."""

    def __init__(self, name: str, accessor: ModelAccessor):
        store = accessor.store
        self.name = name
        self.accessor = accessor
        self.store: SqlStore = store
        self.definition = store.models.get(name)
        #: The model at the top of this one's inheritance chain: it names the row's table.
        self.root = store.models.root(name)
        self.fields: dict[str, Field] = {f.name: f for f in store.models.all_fields(name)}
        self.links: dict[str, Link] = {x.name: x for x in store.models.all_links(name)}
        self.link_by_column: dict[str, Link] = {x.column: x for x in self.links.values()}
        self.columns: tuple[str, ...] = ("id", *self.fields, *self.link_by_column)
        self.column_index: dict[str, int] = {c: i for i, c in enumerate(self.columns)}
        #: The columns' values of a row, in `columns` order; where the bools are among them.
        pick = operator.itemgetter(*self.columns)
        self.pick: Any = pick if len(self.columns) > 1 else (lambda row: (pick(row),))
        self.bool_positions = tuple(
            self.column_index[f.name] for f in self.fields.values() if f.type == "bool"
        )
        self.data_fields = tuple(f.name for f in self.fields.values() if f.declared_in != "XOSBase")
        self._readers: dict[tuple[str, ...], RowReader] = {}
        #: Columns whose few distinct values recur on every row (a pass reading thousands of
        #: objects keeps one copy of each, `sys.intern`), by position in `columns`.
        self.repeating = tuple(self.column_index[c] for c in _REPEATING if c in self.column_index)

    def reader(self, keys: tuple[str, ...]) -> RowReader:
        """The `RowReader` of rows with these column names (made once per shape)."""
        found = self._readers.get(keys)
        if found is None:
            found = self._readers[keys] = RowReader(self, keys)
        return found

    def column_for(self, name: str) -> str:
        """The column a field, link or link id name refers to; unknown names are refused."""
        if name in ("id", "pk"):
            return "id"
        if name in self.fields or name in self.link_by_column:
            return name
        if name in self.links:
            return self.links[name].column
        raise ObjectValidationError(
            f"{self.name} has no field {name!r}; fields: {', '.join(self.public_names())}"
        )

    def public_names(self) -> list[str]:
        return [*self.data_fields, *self.links]


class _ManagerDescriptor:
    def __init__(self, deleted: bool):
        self.deleted = deleted

    def __get__(self, obj: object, cls: type[ModelObject]) -> Manager:
        return Manager(cls, deleted=self.deleted)


class LinkDescriptor:
    """`user.site`: the linked object (read on first use), settable to an object or None."""

    def __init__(self, link: Link):
        self.link = link
        self.cache = f"_link_{link.name}"

    def __get__(self, obj: ModelObject | None, cls: type[ModelObject]) -> Any:
        if obj is None:
            return self
        target_id = obj.__dict__.get(self.link.column)
        if target_id is None:
            return None
        cached = obj.__dict__.get(self.cache)
        if cached is not None and cached.id == target_id:
            return cached
        target = obj._meta.accessor.get_model_class(self.link.target)
        found = target._get_any(target_id)
        obj.__dict__[self.cache] = found
        return found

    def __set__(self, obj: ModelObject, value: Any) -> None:
        if value is None:
            obj.__dict__[self.link.column] = None
            obj.__dict__.pop(self.cache, None)
            return
        if isinstance(value, ModelObject):
            if value.id is None:
                raise ObjectValidationError(
                    f"{obj._meta.name}.{self.link.name}: save the {value._meta.name} first"
                )
            obj.__dict__[self.link.column] = value.id
            obj.__dict__[self.cache] = value
            return
        raise ObjectValidationError(
            f"{obj._meta.name}.{self.link.name}: expected a {self.link.target} object or None, "
            f"got {value!r} (set {self.link.column} to assign an id)"
        )


class ReverseDescriptor:
    """`site.users`: a manager over the live objects whose link points at this one."""

    def __init__(self, declaring: str, link: Link):
        self.declaring = declaring
        self.link = link

    def __get__(self, obj: ModelObject | None, cls: type[ModelObject]) -> Any:
        if obj is None:
            return self
        source = obj._meta.accessor.get_model_class(self.declaring)
        table = obj._meta.store.table(self.declaring)
        return Manager(
            source,
            where=(table.c[self.link.column] == obj.id,),
            creates={self.link.column: obj.id},
        )


class ModelObject:
    """Base of every model class an accessor builds. Construct new objects with field values."""

    _meta: ClassVar[ModelMeta]
    _row: Mapping[str, Any]
    objects: ClassVar[Manager]
    deleted_objects: ClassVar[Manager]
    id: int | None
    # Bookkeeping fields every model carries (declared for type checkers; set per instance).
    created: float | None
    updated: float | None
    enacted: float | None
    policed: float | None
    deleted: bool
    write_protect: bool
    backend_status: str
    backend_code: int
    backend_register: str
    policy_status: str
    policy_code: int
    leaf_model_name: str
    changed_by_step: float | None
    changed_by_policy: float | None

    def __init__(self, **fields: Any):
        meta = self._meta
        for f in meta.fields.values():
            self.__dict__[f.name] = f.default if f.has_default else None
        for column in meta.link_by_column:
            self.__dict__[column] = None
        self.__dict__["id"] = None
        self.__dict__["leaf_model_name"] = meta.name
        self._orig: Stored | None = None
        for key, value in fields.items():
            self._set(key, value)

    def _set(self, key: str, value: Any) -> None:
        meta = self._meta
        if key in meta.links:
            setattr(self, key, value)
        elif key in meta.fields or key in meta.link_by_column:
            self.__dict__[key] = value
        else:
            raise ObjectValidationError(
                f"{meta.name} has no field {key!r}; fields: {', '.join(meta.public_names())}"
            )

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> ModelObject:
        meta = cls._meta
        try:
            values = list(meta.pick(row))
        except KeyError:  # a partial row: missing columns read as unset
            values = [row.get(c) for c in meta.columns]
        return cls._made(values, row)

    @classmethod
    def _from_values(cls, reader: RowReader, row: Sequence[Any]) -> ModelObject:
        """The object of a row read in bulk (`SqlStore.select_rows`), in `reader`'s shape;
        the strings of `ModelMeta.repeating` columns are shared among objects."""
        meta = cls._meta
        values = list(reader.pick(row))
        for i in meta.repeating:
            v = values[i]
            if v.__class__ is str:
                values[i] = intern(v)
        return cls._made(values, RowView(reader.index, row))

    @classmethod
    def _many_from_values(
        cls, reader: RowReader, rows: Iterable[Sequence[Any]]
    ) -> list[ModelObject]:
        """`_from_values` of many rows (a pass's worth): the same objects, with the lookups
        made once for all of them."""
        meta = cls._meta
        pick, index = reader.pick, reader.index
        repeating, bools = meta.repeating, meta.bool_positions
        columns, column_index = meta.columns, meta.column_index
        new = cls.__new__
        out: list[ModelObject] = []
        for row in rows:
            values = list(pick(row))
            for i in repeating:
                v = values[i]
                if v.__class__ is str:
                    values[i] = intern(v)
            for i in bools:  # what the database did to bools (ints in SQLite)
                v = values[i]
                if v is not None and v.__class__ is not bool:
                    values[i] = bool(v)
            obj = new(cls)
            state = obj.__dict__
            state.update(zip(columns, values, strict=True))
            state["_orig"] = Stored(column_index, values)
            state["_row"] = RowView(index, row)
            out.append(obj)
        return out

    @classmethod
    def _made(cls, values: list[Any], row: Mapping[str, Any]) -> ModelObject:
        obj = cls.__new__(cls)
        meta = cls._meta
        for i in meta.bool_positions:  # what the database did to bools (ints in SQLite)
            v = values[i]
            if v is not None and v.__class__ is not bool:
                values[i] = bool(v)
        obj.__dict__.update(zip(meta.columns, values, strict=True))
        obj._orig = Stored(meta.column_index, values)
        # The whole row, sub-model columns included: engines read links of the leaf model
        # from it when the object was fetched through a base model.
        obj._row = row
        return obj

    # -- the runtime's API (engines and the command line; not for plugin authors) -------------

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelObject:
        """For the runtime: the object of a row the runtime read itself (`store.select`,
        `accessor.load_rows`), as if the accessor had fetched it."""
        return cls._from_row(row)

    @classmethod
    def model_meta(cls) -> ModelMeta:
        """For the runtime: the model's fields, links and columns (the command line parses
        and prints objects by them)."""
        return cls._meta

    @property
    def store_key(self) -> Key:
        """For the runtime: `(root model, id)`, the identity of the row whichever model of
        its inheritance chain the object was read as (engines key their work by it)."""
        return (self._meta.root, int(self.id))  # type: ignore[arg-type]

    @property
    def leaf_name(self) -> str:
        """For the runtime: the name of the most derived model of the row (no query)."""
        return self.__dict__.get("leaf_model_name") or self._meta.name

    @property
    def fetched_row(self) -> Mapping[str, Any]:
        """For the runtime: the whole row the object was read from, sub-model columns
        included (empty once `drop_row()` was called, or for an object never read)."""
        return self.__dict__.get("_row", _NO_ROW)

    def as_leaf(self) -> ModelObject:
        """For the runtime: the most derived object of the row, built from the fetched row
        without a query (the accessor reads whole rows); itself when it is the leaf."""
        leaf = self.leaf_name
        if leaf == self._meta.name:
            return self
        return self._meta.accessor.get_model_class(leaf)._from_row(self._row)

    @property
    def column_values(self) -> Mapping[str, Any]:
        """For the runtime: the object's columns by name as they are now (links as ids), a
        view without a copy; those of a sub-model are in `fetched_row` (`as_leaf`)."""
        return self.__dict__

    def drop_row(self) -> None:
        """For the runtime: forget the whole row this object was read from (sub-model columns
        included) once its links were resolved from it; a pass keeps many objects alive."""
        self._row = _NO_ROW

    def note_stored(self, values: Mapping[str, Any]) -> None:
        """For the runtime: the store now holds `values` (bookkeeping columns, written by an
        engine or re-read): set them without counting them as changes to save."""
        self.__dict__.update(values)
        if self._orig is not None:
            self._orig.update(values)

    @classmethod
    def _get_any(cls, object_id: int) -> ModelObject | None:
        """The object with this id, live or soft-deleted (links may point at deleted rows)."""
        return QuerySet(cls, deleted=None).filter(id=object_id).first()

    # -- XOS object API ---------------------------------------------------------------------

    @property
    def pk(self) -> int | None:
        return self.id

    @property
    def model_name(self) -> str:
        return self._meta.name

    @property
    def is_new(self) -> bool:
        return self._orig is None

    @property
    def leaf_model(self) -> ModelObject:
        """The most derived object for this row (itself when it is already the leaf)."""
        leaf = self.__dict__.get("leaf_model_name") or self._meta.name
        if leaf == self._meta.name or self.id is None:
            return self
        found = self._meta.accessor.get_model_class(leaf)._get_any(self.id)
        if found is None:
            raise StoreError(f"{leaf} id {self.id} no longer exists in the store")
        return found

    @property
    def changed_fields(self) -> list[str]:
        """Field (and link column) names whose value differs from what was read or created."""
        if self._orig is None:
            return [c for c in self._meta.columns if c != "id" and self.__dict__.get(c) is not None]
        return [c for c in self._meta.columns if self.__dict__.get(c) != self._orig.get(c)]

    def has_field_changed(self, name: str) -> bool:
        return self._meta.column_for(name) in self.changed_fields

    def get_field_diff(self, name: str) -> tuple[Any, Any] | None:
        column = self._meta.column_for(name)
        if column not in self.changed_fields:
            return None
        before = self._orig.get(column) if self._orig else None
        return (before, self.__dict__.get(column))

    @property
    def diff(self) -> dict[str, tuple[Any, Any]]:
        return {
            c: (self._orig.get(c) if self._orig else None, self.__dict__.get(c))
            for c in self.changed_fields
        }

    def to_dict(self) -> dict[str, Any]:
        """Every column: fields, bookkeeping fields, and links as ids (`site_id`)."""
        return {c: self.__dict__.get(c) for c in self._meta.columns}

    def tologdict(self) -> dict[str, Any]:
        return {"model_name": self._meta.name, "pk": self.id}

    def save(
        self,
        update_fields: Iterable[str] | None = None,
        always_update_timestamp: bool = False,
    ) -> None:
        """Write the object: insert when new, else only the changed (or named) fields."""
        if self._orig is None:
            self._insert()
        else:
            self._update(update_fields, always_update_timestamp)

    def delete(self) -> None:
        """Soft delete, with cascade along required links (contract section 4)."""
        if self.id is None:
            raise StoreError(f"cannot delete a {self._meta.name} that was never saved")
        store = self._meta.store
        touched: set[str] = set()
        with store.write(touched) as conn:
            leaves = store.soft_delete(self._meta.name, self.id, conn)
            touched.update(store.touched_names(leaves))
        if leaves:
            d = self.__dict__
            d["deleted"], d["enacted"], d["policed"] = True, None, None
            if self._orig is not None:
                self._orig.update(deleted=True, enacted=None, policed=None)

    # -- writing -------------------------------------------------------------------------------

    def _checked(self, columns: Iterable[str]) -> dict[str, Any]:
        meta = self._meta
        values: dict[str, Any] = {}
        for c in columns:
            value = self.__dict__.get(c)
            if c in meta.fields:
                values[c] = check_value(meta.name, meta.fields[c], value)
            elif c in meta.link_by_column:
                values[c] = self._checked_link(meta.link_by_column[c], value)
        return values

    def _checked_link(self, link: Link, value: Any) -> int | None:
        meta = self._meta
        if value is None:
            if link.required:
                raise ObjectValidationError(f"{meta.name}.{link.name}: a {link.target} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ObjectValidationError(
                f"{meta.name}.{link.name}: expected a {link.target} id, got {value!r}"
            )
        if not meta.store.exists(link.target, value):
            raise ObjectValidationError(
                f"{meta.name}.{link.name}: {link.target} id {value} does not exist"
            )
        return value

    def _insert(self) -> None:
        meta = self._meta
        values = self._insert_values()
        store = meta.store
        touched = set(store.touched_names([meta.name]))
        with store.write(touched) as conn:
            new_id = store.insert(meta.name, values, conn)
        self._inserted(values, new_id)

    def _insert_values(self) -> dict[str, Any]:
        """The row a new object is inserted as: its checked values and a user's stamps."""
        meta = self._meta
        d = self.__dict__
        for f in meta.fields.values():
            if f.required and not f.has_default and d.get(f.name) is None:
                raise ObjectValidationError(f"{meta.name}.{f.name}: a value is required")
        values = self._checked(c for c in meta.columns if c != "id")
        now = meta.store.clock()
        values.update(
            created=now, updated=now, enacted=None, policed=None, leaf_model_name=meta.name
        )
        return values

    def _inserted(self, values: dict[str, Any], new_id: int) -> None:
        """The object is now the stored row `values` with id `new_id`."""
        meta = self._meta
        d = self.__dict__
        d.update(values)
        d["id"] = new_id
        self._orig = Stored(meta.column_index, [d.get(c) for c in meta.columns])
        self._row = {**values, "id": new_id}

    def _update(self, update_fields: Iterable[str] | None, always_update_timestamp: bool) -> None:
        meta = self._meta
        assert self._orig is not None and self.id is not None
        changed = set(self.changed_fields)
        if update_fields is not None:
            write = {meta.column_for(n) for n in update_fields} - {"id"}
        else:
            write = changed - {"id"}
        caller = current_caller()
        data_changed = any(not is_bookkeeping(c) for c in write & changed)
        stamps: dict[str, float] = {}
        bump = always_update_timestamp
        if caller == "user":
            bump = bump or data_changed or update_fields is None
        else:
            if "updated" in write and not always_update_timestamp:
                # Engines and steps never move `updated` directly (XOS): revert silently.
                write.discard("updated")
                self.__dict__["updated"] = self._orig.get("updated")
            if data_changed and caller == "sync":
                stamps["changed_by_step"] = meta.store.clock()
            elif data_changed and caller == "policy":
                stamps["changed_by_policy"] = meta.store.clock()
        write.discard("updated")
        values = self._checked(write)
        values.update(stamps)
        if not values and not bump:
            return
        store = meta.store
        leaf = self.__dict__.get("leaf_model_name") or meta.name
        touched = set(store.touched_names([leaf]))
        with store.write(touched) as conn:
            new_updated = store.update(
                meta.name, self.id, values, conn, bump_updated=store.clock() if bump else None
            )
        if new_updated is not None:
            values["updated"] = new_updated
        self.__dict__.update(values)
        self._orig.update(values)

    # -- identity ----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelObject) or self.id is None:
            return other is self
        return (
            other.id == self.id
            and other._meta.store.endpoint == self._meta.store.endpoint
            and other._meta.store.models.root(other._meta.name)
            == self._meta.store.models.root(self._meta.name)
        )

    def __hash__(self) -> int:
        if self.id is None:
            return id(self)
        return hash((self._meta.store.models.root(self._meta.name), self.id))

    def __repr__(self) -> str:
        label = self.__dict__.get("name")
        extra = f" {label!r}" if isinstance(label, str) else ""
        return f"<{self._meta.name} id={self.id}{extra}>"

    def __str__(self) -> str:
        label = self.__dict__.get("name")
        return label if isinstance(label, str) else f"{self._meta.name} {self.id}"


def model_class(
    meta: ModelMeta,
    base: type[ModelObject],
    models: ModelSet,
    managers: Callable[..., Any],
    reverse: Callable[[str, Link], Any],
    module: str,
) -> type[Any]:
    """The class of `meta`'s model, derived from `base`: its managers (`objects`,
    `deleted_objects`), a descriptor per link and per reverse link of `models` to it. The
    one builder of model classes, over a store (`build_model_class`) or a core."""
    name = meta.name
    namespace: dict[str, Any] = {
        "_meta": meta,
        "objects": managers(deleted=False),
        "deleted_objects": managers(deleted=True),
        "__module__": module,
        "__qualname__": name,
    }
    for link in meta.definition.links:
        namespace[link.name] = LinkDescriptor(link)
    for declaring, link in models.links_to(name):
        if link.reverse_name:
            namespace[link.reverse_name] = reverse(declaring, link)
    return type(name, (base,), namespace)


def build_model_class(
    name: str, accessor: ModelAccessor, parent: type[ModelObject] | None
) -> type[ModelObject]:
    """A class for model `name`, derived from its parent model's class."""
    return model_class(
        ModelMeta(name, accessor),
        parent or ModelObject,
        accessor.store.models,
        _ManagerDescriptor,
        ReverseDescriptor,
        "xos_runtime.models.generated",
    )
