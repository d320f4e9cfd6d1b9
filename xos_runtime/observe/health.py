"""Readiness: what `/readyz` checks (liveness, `/healthz`, only needs the process to serve).

Ready means the store answers, every engine thread runs and, with `event_bus.kind: kafka`
only, a bootstrap server accepts a connection. Each check is cheap and bounded by a short
timeout, so that a probe never hangs on an outage.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from xos_runtime.config import EventBusSettings
from xos_runtime.store import ModelAccessor

__all__ = ["BROKER_TIMEOUT", "not_ready"]

#: Seconds to wait for a Kafka bootstrap server to accept a connection.
BROKER_TIMEOUT = 1.0


def _broker_answers(servers: list[str], timeout: float) -> bool:
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


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
    if bus.kind == "kafka" and not _broker_answers(bus.servers, broker_timeout):
        problems.append(f"event bus: no Kafka broker answers at {bus.endpoint}")
    return problems
