"""`ApiError`: a refused request, answered as JSON `{"error": ..., "field": ...}`."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request the core refuses: its HTTP status, a message, and the field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str | None]:
        return {"error": self.message, "field": self.field}
