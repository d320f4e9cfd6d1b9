"""Alias of `xossynchronizer.modelaccessor`: `model_accessor` and every model class."""

from __future__ import annotations

from typing import Any

from xossynchronizer.modelaccessor import ModelAccessor, model_accessor

__all__ = ["ModelAccessor", "model_accessor"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(model_accessor, name)
