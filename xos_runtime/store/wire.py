"""The JSON the runtime reads and writes in bulk: the core's HTTP API at both ends (what a
core sends and reads, `core serve`, and what the remote accessor sends and reads,
`store.remote`), and the rows of a PostgreSQL recordset write (`SqlStore.write_batch`).

Over a core, JSON was a quarter of the core's time and a tenth of the runtime's: rows are
mostly floats (timestamps), which the standard library writes slowly. orjson (a well-kept
library, in Rust) writes and reads the same JSON about ten times faster. The rules stay the
API's: NaN and the infinities are not JSON (`loads` refuses them; the store keeps no such
value, and `dumps` writes one as null); an integer beyond 64 bits, which orjson does not
write, is written by the standard library instead, and read by orjson as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; TypeError for what JSON cannot say."""
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits (or a type neither writes: raised again)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """The value of the JSON `data`; ValueError when it is not JSON (NaN and the
    infinities included) or not UTF-8.

    What orjson refuses is read again by the standard library, whose reading of a number
    too large for a float (infinity) lets the reader name the field at fault."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_refuse)


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")
