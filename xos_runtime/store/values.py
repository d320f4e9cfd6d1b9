"""Checking and converting field values, so a bad value is refused before anything is written."""

from __future__ import annotations

from typing import Any

from xos_runtime.exceptions import ObjectValidationError
from xos_runtime.models.definitions import Field

_INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def check_value(model: str, field: Field, value: Any) -> Any:
    """The value to store for `field`, or `ObjectValidationError` naming model and field."""
    where = f"{model}.{field.name}"
    if value is None:
        if field.null or not field.required or field.declared_in == "XOSBase":
            return None
        raise ObjectValidationError(f"{where}: a value is required (got None)")
    t = field.type
    if t in ("string", "text"):
        if not isinstance(value, str):
            raise ObjectValidationError(f"{where}: expected a string, got {value!r}")
        if field.max_length is not None and len(value) > field.max_length:
            raise ObjectValidationError(
                f"{where}: {len(value)} characters is longer than max_length {field.max_length}"
            )
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise ObjectValidationError(f"{where}: expected true or false, got {value!r}")
        return value
    if t in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ObjectValidationError(f"{where}: expected an integer ({t}), got {value!r}")
        lo, hi = _INT_RANGES[t]
        if not lo <= value <= hi:
            raise ObjectValidationError(f"{where}: {value} is out of range for {t}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ObjectValidationError(f"{where}: expected a number ({t}), got {value!r}")
    return float(value)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_text(model: str, field: Field, text: str) -> Any:
    """Read a value written on a command line (`enabled=true`, `max=10`, `note=null`)."""
    where = f"{model}.{field.name}"
    if text == "null":
        return None
    t = field.type
    if t in ("string", "text"):
        return text
    if t == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ObjectValidationError(f"{where}: expected true or false, got {text!r}")
    try:
        return int(text) if t in _INT_RANGES else float(text)
    except ValueError:
        kind = "an integer" if t in _INT_RANGES else "a number"
        raise ObjectValidationError(f"{where}: expected {kind} ({t}), got {text!r}") from None
