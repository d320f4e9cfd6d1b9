"""`xosapi.convenience.serviceinstance.ORMWrapperServiceInstance` (xos-runtime-xos-compat)."""

from __future__ import annotations

from xos_runtime_xos_compat.core import ORMWrapperServiceInstance
from xos_runtime_xos_compat.wrappers import register_convenience_wrapper

__all__ = ["ORMWrapperServiceInstance", "register_convenience_wrapper"]
