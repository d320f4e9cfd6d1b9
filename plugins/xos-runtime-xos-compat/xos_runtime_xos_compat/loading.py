"""Loading the convenience wrapper files of XOS services (`models/convenience/*.py`).

In XOS the core hands every synchronizer the convenience files of *all* services, so a
service's wrapper (VOLTServiceInstance's, say) is there when another service (fabric
crossconnect) walks to its objects. Here each configured `models_dir` entry stands for a
service: the `convenience/` folder inside it, or next to it, is loaded, every file imported
once under its own module name; loading a file runs its `register_convenience_wrapper(...)`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable

from loguru import logger

__all__ = ["convenience_dirs", "load_convenience_wrappers"]

_PACKAGE = "xos_runtime_xos_compat_convenience"


def convenience_dirs(models_dirs: Iterable[str]) -> list[str]:
    """The `convenience` folders of the given `models_dir` entries, without duplicates."""
    found: list[str] = []
    for models_dir in models_dirs:
        for candidate in (
            os.path.join(models_dir, "convenience"),
            os.path.join(os.path.dirname(models_dir.rstrip(os.sep)), "convenience"),
        ):
            real = os.path.realpath(candidate)
            if os.path.isdir(real) and real not in found:
                found.append(real)
    return found


def load_convenience_wrappers(models_dirs: Iterable[str]) -> list[str]:
    """Import every `.py` file of the convenience folders; return the files imported.

    A file that fails to import is logged as a warning and skipped, as XOS did.
    """
    loaded: list[str] = []
    for directory in convenience_dirs(models_dirs):
        digest = hashlib.sha1(directory.encode(), usedforsecurity=False).hexdigest()[:12]
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".py") or name.startswith(("__init__", "test", ".")):
                continue
            path = os.path.join(directory, name)
            module_name = f"{_PACKAGE}_{digest}_{name[:-3]}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(module_name, None)
                logger.warning(
                    "convenience wrapper {} failed to load: {}: {}", path, type(exc).__name__, exc
                )
                continue
            logger.debug("loaded convenience wrappers from {}", path)
            loaded.append(path)
    return loaded
