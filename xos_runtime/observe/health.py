"""Readiness: what `/readyz` checks (liveness, `/healthz`, only needs the process to serve).

Ready means the store answers, every engine thread runs and, with `event_bus.kind: kafka`
only, a bootstrap server answers a Kafka request (ApiVersions, the request every client
sends first; a port that accepts connections but does not speak Kafka is not a broker).
Each check is cheap and bounded by a short timeout, so that a probe never hangs on an
outage.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from xos_runtime.config import EventBusSettings
from xos_runtime.store import ModelAccessor

__all__ = ["BROKER_TIMEOUT", "broker_answers", "not_ready"]

#: Seconds to wait for a Kafka bootstrap server to accept a connection.
BROKER_TIMEOUT = 1.0


#: ApiVersions (key 18) version 0, correlation id 1, client id "xos-runtime-readyz".
_CLIENT = b"xos-runtime-readyz"
_API_VERSIONS = struct.pack(">hhih", 18, 0, 1, len(_CLIENT)) + _CLIENT
_REQUEST = struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def broker_answers(server: str, timeout: float) -> bool:
    """Whether the Kafka broker at `server` (host:port) answers an ApiVersions request
    within `timeout` seconds."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_REQUEST)
            head = _read(sock, 8)  # response size, then the correlation id
    except (OSError, ValueError):
        return False
    return len(head) == 8 and struct.unpack(">ii", head)[1] == 1


def not_ready(
    accessor: ModelAccessor,
    dead_engines: Callable[[], list[str]],
    bus: EventBusSettings,
    *,
    broker_timeout: float = BROKER_TIMEOUT,
) -> list[str]:
    """What keeps the process from being ready, one short line each ([] when ready)."""
    problems: list[str] = []
    try:
        accessor.check_db_connection_okay()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problems.append(f"store: not answering: {first}")
    problems += [f"engine {name}: not running" for name in dead_engines()]
    if bus.kind == "kafka" and not any(broker_answers(s, broker_timeout) for s in bus.servers):
        problems.append(f"event bus: no Kafka broker answers at {bus.endpoint}")
    return problems
