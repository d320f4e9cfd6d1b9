"""Query parameters of the core's routes, read and checked: a bad one is a 400 naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

from xos_runtime.core.errors import ApiError

__all__ = ["count_param", "seconds_param"]


def seconds_param(params: Mapping[str, str], name: str, default: float, most: float) -> float:
    """`name` as a number of seconds from 0 to `most` (`default` when absent); NaN, a
    negative or a larger value, or no number at all is refused."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= most:  # NaN fails too
        raise ApiError(400, f"{name}: expected 0 to {most:g} seconds, got {text!r:.40}", field=name)
    return value


@overload
def count_param(params: Mapping[str, str], name: str, default: int, most: int) -> int: ...


@overload
def count_param(params: Mapping[str, str], name: str, default: None, most: int) -> int | None: ...


def count_param(params: Mapping[str, str], name: str, default: int | None, most: int) -> int | None:
    """`name` as a whole number from 1 to `most` (`default` when absent); anything else,
    or no number at all, is refused."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise ApiError(400, f"{name}: expected 1 to {most}, got {text!r:.40}", field=name)
    return value
