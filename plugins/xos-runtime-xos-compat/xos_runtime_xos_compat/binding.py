"""The runtime the XOS import names act on, and stand-ins for model classes before it exists.

XOS builds its model accessor before it imports any plugin module, and plugin modules do
`from xossynchronizer.modelaccessor import OLTDevice, model_accessor` at import time.
xos-runtime imports the `*_dir` modules during discovery, before the models are loaded and
the store is open, so at that moment there is no model class to hand out. What they get is
a *model reference*: a class named after the model that forwards everything (`.objects`,
construction, `isinstance`) to the real model class of the runtime bound later by the
plugin's `xos_runtime_startup` hook (or by `bind()` in a script). Once bound, lookups hand
out the real classes directly.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "ModelReference",
    "XOSModelAccessor",
    "bind",
    "bound_accessor",
    "bound_runtime",
    "model_accessor",
    "model_reference",
    "unbind",
]

_lock = threading.Lock()
_state: dict[str, Any] = {"accessor": None, "runtime": None}


def bind(accessor: Any, runtime: Any = None) -> None:
    """Make `accessor` (and `runtime`, for the event bus) the one the XOS names act on.

    Called by the plugin's `xos_runtime_startup` hook; a script that opened an accessor with
    `xos_runtime.connect()` may call it itself.
    """
    from xos_runtime_xos_compat.wrappers import install_wrappers
    from xos_runtime_xos_compat.xosbase import install_xosbase_fields

    with _lock:
        _state["accessor"] = accessor
        _state["runtime"] = runtime
    install_wrappers(accessor)
    install_xosbase_fields(accessor)


def unbind() -> None:
    """Forget the bound runtime (at shut-down)."""
    with _lock:
        _state["accessor"] = None
        _state["runtime"] = None


def bound_accessor() -> Any:
    """The bound model accessor; RuntimeError before the runtime has started."""
    accessor = _state["accessor"]
    if accessor is None:
        raise RuntimeError(
            "the XOS model accessor is not ready yet: model classes can be named at import "
            "time, but used only once xos-runtime has opened the store"
        )
    return accessor


def bound_runtime() -> Any:
    """The bound runtime, or None (a script bound an accessor only)."""
    return _state["runtime"]


class ModelReference(type):
    """Metaclass of the stand-ins: attribute access, calls and isinstance go to the model."""

    model_name: str

    def real(cls) -> Any:
        return bound_accessor().get_model_class(cls.model_name)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(cls.real(), name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.real())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.real())

    def __repr__(cls) -> str:
        return f"<XOS model reference {cls.model_name}>"


_references: dict[str, type] = {}


def model_reference(name: str) -> type:
    """The stand-in class of model `name` (one per name, so `observes = X` compares equal)."""
    with _lock:
        ref = _references.get(name)
        if ref is None:
            ref = ModelReference(name, (), {"model_name": name, "__module__": __name__})
            _references[name] = ref
        return ref


def _looks_like_model(name: str) -> bool:
    return bool(name) and name[0].isupper()


class XOSModelAccessor:
    """`xossynchronizer.modelaccessor.model_accessor`: the runtime's accessor, reachable early.

    `model_accessor.<Model>` is the real model class once the runtime is bound, and a model
    reference before; every other attribute (`get_model_class`, `has_model_class`, `now`,
    `fetch_pending`, ...) is the bound accessor's.
    """

    def __getattr__(self, name: str) -> Any:
        accessor = _state["accessor"]
        if accessor is not None:
            if _looks_like_model(name) and accessor.has_model_class(name):
                return accessor.get_model_class(name)
            return getattr(accessor, name)
        if _looks_like_model(name):
            return model_reference(name)
        return getattr(bound_accessor(), name)

    def __repr__(self) -> str:
        state = "bound" if _state["accessor"] is not None else "not yet bound"
        return f"<XOS model accessor, {state}>"


#: The one accessor object XOS plugins import.
model_accessor = XOSModelAccessor()
