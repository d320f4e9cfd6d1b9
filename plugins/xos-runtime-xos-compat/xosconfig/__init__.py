"""`xosconfig`: XOS's `Config`, reading the service's own config file (xos-runtime-xos-compat)."""

from __future__ import annotations

from xos_runtime_xos_compat.config import Config

__all__ = ["Config"]
