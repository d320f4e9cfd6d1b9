"""Model objects of a remote accessor: the local `ModelObject`, its writes sent to a core.

A remote object is a `ModelObject` (fields as attributes, forward links, `to_dict()`, the
snapshot of what was read, `changed_fields`): only reading rows, `save()` and `delete()` go
through the core. `save()` sends only what changed since the object was read (or
`update_fields`), as the local one writes, so that a script's save never overwrites a
concurrent change of another field; the core applies the rules of who moves which
timestamp. `always_update_timestamp` is not sent: a core moves `updated` when data fields
change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from xos_runtime.exceptions import ObjectValidationError, StoreError
from xos_runtime.models.definitions import Link
from xos_runtime.store.objects import ModelMeta, ModelObject, Stored, model_class
from xos_runtime.store.remote.client import CoreConflict
from xos_runtime.store.remote.query import RemoteManager, RemoteQuerySet
from xos_runtime.store.tracking import current_caller

if TYPE_CHECKING:
    from xos_runtime.store.remote.accessor import RemoteAccessor, RemoteStore

__all__ = ["RemoteObject", "build_remote_class"]


class RemoteMeta(ModelMeta):
    """A `ModelMeta` whose store is a core (`RemoteStore`)."""

    remote: RemoteStore

    def __init__(self, name: str, accessor: RemoteAccessor):
        super().__init__(name, cast(Any, accessor))
        self.remote = accessor.store


class _Managers:
    def __init__(self, deleted: bool):
        self.deleted = deleted

    def __get__(self, obj: object, cls: type[RemoteObject]) -> RemoteManager:
        return RemoteManager(cls, deleted=self.deleted)


class _Reverse:
    """`site.slices`: a manager over the live objects whose link points at this one."""

    def __init__(self, declaring: str, link: Link):
        self.declaring = declaring
        self.link = link

    def __get__(self, obj: RemoteObject | None, cls: type[RemoteObject]) -> Any:
        if obj is None:
            return self
        source = obj._meta.accessor.get_model_class(self.declaring)
        return RemoteManager(cast(Any, source), creates={self.link.column: obj.id})


class RemoteObject(ModelObject):
    """Base of every model class of a remote accessor."""

    _meta: ClassVar[RemoteMeta]

    @classmethod
    def _from_json(cls, row: Mapping[str, Any]) -> RemoteObject:
        return cast(RemoteObject, cls._from_row(row))

    @classmethod
    def _get_any(cls, object_id: int) -> ModelObject | None:
        return RemoteQuerySet(cls, deleted=None).filter(id=object_id).first()

    def _checked_link(self, link: Link, value: Any) -> int | None:
        # Whether the target exists is the core's to check (400 naming the link).
        meta = self._meta
        if value is None:
            if link.required:
                raise ObjectValidationError(f"{meta.name}.{link.name}: a {link.target} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ObjectValidationError(
                f"{meta.name}.{link.name}: expected a {link.target} id, got {value!r}"
            )
        return value

    def _stored(self, row: Mapping[str, Any]) -> None:
        """The object is now what the core answered."""
        meta = self._meta
        d = self.__dict__
        for c in meta.columns:
            if c in row:
                d[c] = row[c]
        self._orig = Stored(meta.column_index, [d.get(c) for c in meta.columns])
        self._row = dict(row)

    def _insert(self) -> None:
        meta = self._meta
        d = self.__dict__
        for f in meta.fields.values():
            if f.required and not f.has_default and d.get(f.name) is None:
                raise ObjectValidationError(f"{meta.name}.{f.name}: a value is required")
        body: dict[str, Any] = {}
        for name, value in self._checked(c for c in meta.columns if c != "id").items():
            field = meta.fields.get(name)
            if field is None:  # a link column
                if value is not None:
                    body[name] = value
            elif name in meta.data_fields:
                body[name] = value
            elif name != "leaf_model_name":
                # A bookkeeping field the script set: sent, and the core says if it may.
                default = field.default if field.has_default else None
                if value != default:
                    body[name] = value
        self._stored(meta.remote.create(meta.name, body, _caller_headers()))

    def _update(self, update_fields: Iterable[str] | None, always_update_timestamp: bool) -> None:
        meta = self._meta
        assert self._orig is not None and self.id is not None
        if update_fields is not None:
            write = {meta.column_for(n) for n in update_fields}
        else:
            write = set(self.changed_fields)
        write -= {"id", "updated", "leaf_model_name"}
        values = self._checked(sorted(write))
        if not values:
            return
        self._stored(meta.remote.update(meta.name, self.id, values, _caller_headers()))

    def delete(self) -> None:
        """Soft delete, with cascade along required links (the core's DELETE)."""
        meta = self._meta
        if self.id is None:
            raise StoreError(f"cannot delete a {meta.name} that was never saved")
        try:
            meta.remote.delete(meta.name, self.id)
        except CoreConflict as exc:
            if exc.field == "write_protect":
                return  # as the local store: not deleted, no error
            raise
        d = self.__dict__
        d["deleted"], d["enacted"], d["policed"] = True, None, None
        if self._orig is not None:
            self._orig.update(deleted=True, enacted=None, policed=None)


def _caller_headers() -> dict[str, str]:
    """Who saves, for the core (`X-XOS-Caller`): scripts are users, engines say who they are."""
    caller = current_caller()
    return {} if caller == "user" else {"X-XOS-Caller": caller}


def build_remote_class(
    name: str, accessor: RemoteAccessor, parent: type[RemoteObject] | None
) -> type[RemoteObject]:
    """A class for model `name` over a core, derived from its parent model's class."""
    return model_class(
        RemoteMeta(name, accessor),
        parent or RemoteObject,
        accessor.models,
        _Managers,
        _Reverse,
        "xos_runtime.models.remote",
    )
