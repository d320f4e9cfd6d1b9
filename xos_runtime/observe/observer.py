"""One runtime's observer: its metrics registry, its outcome metrics, and its HTTP server."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from xos_runtime.observe.collectors import HostCollector
from xos_runtime.observe.health import not_ready
from xos_runtime.observe.metrics import OutcomeMetrics
from xos_runtime.observe.observed import ObservedHost
from xos_runtime.observe.server import StatusServer

__all__ = ["Observer"]


class Observer:
    """The metrics of one runtime, on a registry of its own (with the process's CPU, memory
    and file descriptors, and the Python platform), and the server that shows them.

    Register `outcomes` with the plugin manager before any engine runs.
    """

    def __init__(self, host: ObservedHost):
        self.host = host
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.outcomes = OutcomeMetrics()
        self.registry.register(self.outcomes)
        self.registry.register(HostCollector(host))

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)

    def not_ready(self, dead_engines: Callable[[], list[str]]) -> list[str]:
        """What keeps the runtime from being ready ([] when ready); see `health`."""
        return not_ready(self.host.accessor, dead_engines, self.host.settings.event_bus)

    def serve(self, dead_engines: Callable[[], list[str]]) -> StatusServer:
        """Start the HTTP server of `metrics.host`/`metrics.port` (OSError if it cannot
        listen); `dead_engines` names the engines whose thread has ended."""
        m = self.host.settings.metrics
        server = StatusServer(
            m.host,
            m.port,
            self.host,
            metrics_text=self.metrics_text,
            not_ready=lambda: self.not_ready(dead_engines),
        )
        server.start()
        return server
