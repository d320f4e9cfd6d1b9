"""Public names of a package imported on first use, so that importing the package is cheap.

`--help` and argument parsing must not pay for SQLAlchemy, networkx or the engines: the
packages whose faces name them (`xos_runtime`, `xos_runtime.config`, `xos_runtime.engines`)
resolve each name from its module the first time it is asked for (PEP 562), then keep it as
a plain attribute.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, modules: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module `__getattr__` and `__dir__` of `package`: `modules` maps each lazy name to
    its module (absolute, or relative to `package` when it starts with a dot); `public` is
    the package's `__all__`, listed by `dir()` before any name is loaded."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # from now on a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
