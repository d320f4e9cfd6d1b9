"""`xosapi.orm`: `register_convenience_wrapper` and `ORMWrapper` (xos-runtime-xos-compat)."""

from __future__ import annotations

from xos_runtime_xos_compat.wrappers import ORMWrapper, register_convenience_wrapper

__all__ = ["ORMWrapper", "register_convenience_wrapper"]
