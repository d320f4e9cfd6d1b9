"""Who is asking: HTTP basic auth or a bearer token, with a limit on failed attempts."""

from __future__ import annotations

import base64
import binascii
import collections
import threading
import time
from collections.abc import Callable, Mapping

from xos_runtime.core.errors import ApiError
from xos_runtime.core.users import User, Users

__all__ = ["FailureLimit", "authenticate"]

#: What a 401 says a client may use (RFC 7235), as XOS's API answered.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="xos-runtime core"'}


class FailureLimit:
    """At most `limit` failed authentications per client in `window` seconds; then 429
    until the oldest of them is older than the window. `clock` is injectable for tests."""

    def __init__(
        self, limit: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> collections.deque[float]:
        times = self._failures.get(client)
        if times is None:
            return collections.deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds until `client` may try again, or None when it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if len(times) < self.limit:
                return None
            return max(0.0, times[0] + self.window - now)

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._recent(client, now)
            self._failures.setdefault(client, collections.deque()).append(now)


def _credentials(header: str, users: Users) -> User | None:
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer" and credentials:
        return users.check_token(credentials)
    if scheme == "basic":
        try:
            text = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = text.partition(":")
        if sep and name and password:
            return users.check_password(name, password)
    return None


def known_at_once(headers: Mapping[str, str], users: Users) -> bool:
    """Whether `authenticate` can answer for these headers without the store or a password
    hash (basic credentials checked a moment ago): then it runs on the event loop."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        text = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    name, sep, password = text.partition(":")
    return bool(sep and name and password) and users.known_at_once(name, password)


def authenticate(
    headers: Mapping[str, str], client: str, users: Users, limit: FailureLimit
) -> User:
    """The user of a request, or `ApiError`: 401 (with `WWW-Authenticate: Basic`) for none
    or wrong credentials, 429 for a client past its failures."""
    wait = limit.retry_after(client)
    if wait is not None:
        raise ApiError(
            429,
            f"too many failed authentications from {client}; try again in {wait:.0f} s",
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    header = headers.get("authorization")
    if not header:
        raise ApiError(401, "authentication required (basic or bearer)", headers=CHALLENGE)
    user = _credentials(header, users)
    if user is None:
        limit.failed(client)
        raise ApiError(401, "wrong user name, password or token", headers=CHALLENGE)
    return user
