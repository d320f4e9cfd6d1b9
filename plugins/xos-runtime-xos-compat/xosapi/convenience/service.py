"""`xosapi.convenience.service.ORMWrapperService` (xos-runtime-xos-compat)."""

from __future__ import annotations

from xos_runtime_xos_compat.core import ORMWrapperService
from xos_runtime_xos_compat.wrappers import register_convenience_wrapper

__all__ = ["ORMWrapperService", "register_convenience_wrapper"]
