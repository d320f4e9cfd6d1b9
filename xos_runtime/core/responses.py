"""`JSONResponse`: the core's JSON answers, written by the API's JSON (`store.wire`)."""

from __future__ import annotations

from typing import Any

from starlette import responses

from xos_runtime.store import wire

__all__ = ["JSONResponse"]


class JSONResponse(responses.JSONResponse):
    """Starlette's JSON response, with orjson's speed: the rows a core sends are mostly
    timestamps, slow to write with the standard library."""

    def render(self, content: Any) -> bytes:
        return wire.dumps(content)
