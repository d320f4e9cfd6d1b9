"""XOS's three XOSBase fields the runtime's base does not carry, on every model.

`backend_need_delete_policy`, `xos_managed` and `backend_handle` are XOSBase fields in XOS:
every model has them. The core models of this plugin declare them (stored columns). A service
model derived directly from XOSBase (olt's `OLTDevice`, att-workflow-driver's
`AttWorkflowDriverWhiteListEntry`) cannot get a column from a plugin, so when the store is
bound it gets them as plain attributes with XOS's defaults, not stored: reading and setting
them works, and `save(update_fields=[...])` naming them writes the other fields named (or
nothing). att-workflow-driver's whitelist policy sets `backend_need_delete_policy` and saves
exactly that way; the runtime runs the delete-policy handshake itself, whatever the field says.

Why not on the runtime's own base: a store gains a new base column with `ALTER TABLE ADD
COLUMN`, but the rows it already holds read NULL, not the field's default (`xos_managed` would
read None instead of True); filling them is the store's job (xos_runtime/store), see the
plugin README.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["XOSBASE_DEFAULTS", "install_xosbase_fields"]

#: The fields and XOS's defaults.
XOSBASE_DEFAULTS: dict[str, Any] = {
    "backend_need_delete_policy": False,
    "xos_managed": True,
    "backend_handle": None,
}


def _unstored_save(self: Any, update_fields: Iterable[str] | None = None, **kwargs: Any) -> None:
    """`save` of a model whose XOSBase fields are not stored: those names are left out of
    `update_fields`; when nothing else was named, nothing is written (unless
    `always_update_timestamp` asks for the timestamp alone)."""
    stored_save = type(self)._xos_compat_stored_save
    if update_fields is None:
        stored_save(self, None, **kwargs)
        return
    names = list(update_fields)
    kept = [n for n in names if n not in XOSBASE_DEFAULTS]
    if len(kept) < len(names) and not kept and not kwargs.get("always_update_timestamp"):
        return
    stored_save(self, kept, **kwargs)


def install_xosbase_fields(accessor: Any) -> list[str]:
    """Give every model class of `accessor` that lacks them the XOSBase fields (unstored);
    the names of the models that got them."""
    given = []
    for name, cls in accessor.get_all_model_classes().items():
        missing = {f: v for f, v in XOSBASE_DEFAULTS.items() if f not in cls._meta.fields}
        if not missing:
            continue
        for field, default in missing.items():
            type.__setattr__(cls, field, default)
        # a sub-model whose base was done already inherits both (and must not wrap the wrapper)
        if cls.save is not _unstored_save:
            type.__setattr__(cls, "_xos_compat_stored_save", cls.save)
            type.__setattr__(cls, "save", _unstored_save)
        given.append(name)
    return given
