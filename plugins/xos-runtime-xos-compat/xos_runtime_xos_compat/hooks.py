"""The compat plugin's hook implementations (entry point `xos_compat` of `xos_runtime`).

* importing this module (discovery does, before any `*_dir` module is imported) gives
  Python 3 the one Python 2 builtin XOS services need (`long`) and registers the core
  convenience wrappers;
* `xos_runtime_models`: the XOS core models (`models/core.xproto`);
* `xos_runtime_configure`: loads the convenience wrappers of every configured service
  (`models/convenience/*.py` next to each `models_dir` entry);
* `xos_runtime_store_opened`: binds the accessor, so that the convenience methods and the
  core-side behaviours hold for scripts (`xos_runtime.connect(config)`) too;
* `xos_runtime_startup` / `xos_runtime_shutdown`: bind and unbind the runtime the XOS names
  act on (`model_accessor`, model classes, `XOSKafkaProducer`); at start-up the service's
  logging dictConfig is re-applied as multistructlog applied it (`logsetup`).
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from xos_runtime import hookimpl
from xos_runtime_xos_compat import binding
from xos_runtime_xos_compat.core import register_core_wrappers
from xos_runtime_xos_compat.loading import load_convenience_wrappers
from xos_runtime_xos_compat.logsetup import apply_service_logging

__all__ = [
    "MODELS_FILE",
    "xos_runtime_configure",
    "xos_runtime_models",
    "xos_runtime_shutdown",
    "xos_runtime_startup",
    "xos_runtime_store_opened",
]

#: The XOS core models. Absolute, because the runtime resolves relative paths against the cwd.
MODELS_FILE = Path(__file__).resolve().parent / "models" / "core.xproto"

# att-workflow-driver calls `long(...)`; nothing else of Python 2 is provided.
if not hasattr(builtins, "long"):
    builtins.long = int  # type: ignore[attr-defined]

register_core_wrappers()


@hookimpl
def xos_runtime_models() -> list[str]:
    """The xproto file of the XOS core models."""
    return [str(MODELS_FILE)]


@hookimpl
def xos_runtime_configure(config: Any) -> None:
    """Load `models/convenience/*.py` of every configured `models_dir`'s service."""
    load_convenience_wrappers(config.models_dir)


@hookimpl
def xos_runtime_store_opened(accessor: Any) -> None:
    """Bind the opened store: model classes and convenience wrappers become live."""
    binding.bind(accessor)


@hookimpl
def xos_runtime_startup(runtime: Any) -> None:
    """Bind the started runtime: model classes, wrappers and the event bus become live; the
    service's logging dictConfig is applied as XOS applied it."""
    apply_service_logging(getattr(runtime, "settings", None))
    binding.bind(runtime.accessor, runtime)


@hookimpl
def xos_runtime_shutdown(runtime: Any) -> None:
    binding.unbind()
