"""Convenience wrappers (`xosapi.orm`): XOS's per-model methods, put on the runtime's classes.

In XOS every object a plugin touches is an `ORMWrapper` around a protobuf message, and the
class of that wrapper is chosen by model name from the wrappers registered with
`register_convenience_wrapper("<Model>", cls)` (the service's `models/convenience/*.py` files
and the core ones), falling back along the object's class hierarchy. Here the objects are the
runtime's own model objects, so instead of wrapping each object, `install_wrappers` copies the
attributes a wrapper class defines (methods, properties) onto the runtime's model class they
are registered for, once the store is open. A model without a wrapper of its own gets its
nearest ancestor's, as in XOS.

`ORMWrapper` itself carries the ORM semantics XOS plugins rely on that the runtime's objects
do not have under those names: `save_changed_fields`, `class_names`, `stub`, `self_content_type_id`.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ORMWrapper", "install_wrappers", "register_convenience_wrapper", "registered_wrappers"]

_lock = threading.Lock()
_registry: dict[str, type] = {}


def register_convenience_wrapper(class_name: str, wrapper_class: type) -> None:
    """Register `wrapper_class` as the convenience wrapper of model `class_name` (XOS API).

    Registering again for a name replaces the earlier class, as in XOS. Wrappers registered
    after the runtime started take effect on its next `install_wrappers`.
    """
    with _lock:
        _registry[class_name] = wrapper_class


def registered_wrappers() -> dict[str, type]:
    """The wrappers registered so far, by model name."""
    with _lock:
        return dict(_registry)


class ORMWrapper:
    """Base of every convenience wrapper; its attributes go onto every model class.

    Methods here run with `self` a runtime model object (see the module docstring), so they
    use only the runtime's object API.
    """

    @property
    def stub(self) -> Any:
        """What XOS wrappers reach other models through (`self.stub.Service.objects...`)."""
        return self._meta.accessor  # type: ignore[attr-defined]

    @property
    def class_names(self) -> str:
        """The object's model hierarchy, most derived first, as XOS stored it: `"ONOSApp,
        ServiceInstance,XOSBase"`."""
        models = self._meta.store.models  # type: ignore[attr-defined]
        leaf = self.__dict__.get("leaf_model_name") or self._meta.name  # type: ignore[attr-defined]
        return ",".join([*models.ancestors(leaf), "XOSBase"])

    @property
    def has_changed(self) -> bool:
        return bool(self.changed_fields)  # type: ignore[attr-defined]

    def save_changed_fields(self, always_update_timestamp: bool = False) -> None:
        """Save only the fields changed since the object was read; nothing when none changed.

        With `always_update_timestamp`, `updated` moves as well (what XOS event and pull steps
        do to make policies and syncs run).
        """
        changed = list(self.changed_fields)  # type: ignore[attr-defined]
        if not changed:
            return
        if always_update_timestamp and "updated" not in changed:
            changed.append("updated")
        self.save(  # type: ignore[attr-defined]
            update_fields=sorted(changed), always_update_timestamp=always_update_timestamp
        )


def _reserved(cls: type) -> set[str]:
    meta = cls._meta  # type: ignore[attr-defined]
    reserved = {"_meta", "objects", "deleted_objects", "id", "pk"}
    reserved.update(meta.fields, meta.links, meta.link_by_column)
    reserved.update(link.reverse_name for _n, link in meta.store.models.links_to(meta.name))
    return reserved


def install_wrappers(accessor: Any) -> None:
    """Put the registered wrappers' attributes onto the model classes of `accessor`.

    For each model the wrapper of the nearest name in its hierarchy is used (itself first);
    the attributes of that wrapper and of its `ORMWrapper` bases are set on the model class,
    the most derived winning. Fields, links and reverse links of the model are never
    shadowed.
    """
    with _lock:
        registry = dict(_registry)
    models = accessor.models
    for name, cls in accessor.get_all_model_classes().items():
        chain = models.ancestors(name)
        wrapper = next((registry[n] for n in chain if n in registry), ORMWrapper)
        reserved = _reserved(cls)
        for klass in reversed(wrapper.__mro__):
            if klass is object or not issubclass(klass, ORMWrapper):
                continue
            for attr, value in vars(klass).items():
                if attr.startswith("__") or attr in reserved:
                    continue
                type.__setattr__(cls, attr, value)
