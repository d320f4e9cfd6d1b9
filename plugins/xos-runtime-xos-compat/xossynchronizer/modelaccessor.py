"""`xossynchronizer.modelaccessor`: `model_accessor` and every model class by name.

Plugin modules import from here at import time, before xos-runtime has opened the store:
they then get stand-ins that act as the model classes once the runtime has started (see
`xos_runtime_xos_compat.binding`). Afterwards the real classes are handed out.
"""

from __future__ import annotations

from typing import Any

from xos_runtime_xos_compat.binding import XOSModelAccessor, model_accessor

__all__ = ["ModelAccessor", "model_accessor"]

#: The XOS class name of the accessor.
ModelAccessor = XOSModelAccessor


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(model_accessor, name)
