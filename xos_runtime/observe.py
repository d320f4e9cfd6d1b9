"""Observability of a running host: outcome counters, `/metrics` and `/healthz` over HTTP.

The collector is a plugin of the same hook contract as any other: it implements the outcome
hooks (`xos_runtime_sync_outcome` and its policy, event and pull siblings), so it sees
exactly what third-party observers see. The HTTP endpoint (stdlib `http.server`, one daemon
thread) serves Prometheus text format and a health check; it is off unless
`metrics.enabled` is set, and so are its imports (`http.server`, the status query): a `run`
without metrics does not load them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

from xos_runtime.engines import Outcome
from xos_runtime.hookspecs import hookimpl
from xos_runtime.store import ModelAccessor


class OutcomeCounters:
    """Counts outcomes and call time per engine and outcome kind (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.seconds: dict[str, float] = {}

    def _add(self, engine: str, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[(engine, outcome.kind)] += 1
            self.seconds[engine] = self.seconds.get(engine, 0.0) + outcome.duration

    @hookimpl
    def xos_runtime_sync_outcome(self, step: Any, obj: Any, outcome: Outcome) -> None:
        self._add("sync", outcome)

    @hookimpl
    def xos_runtime_policy_outcome(
        self, policy: Any, obj: Any, action: str, outcome: Outcome
    ) -> None:
        self._add("policies", outcome)

    @hookimpl
    def xos_runtime_event_outcome(self, step: Any, event: Any, outcome: Outcome) -> None:
        self._add("events", outcome)

    @hookimpl
    def xos_runtime_pull_outcome(self, step: Any, outcome: Outcome) -> None:
        self._add("pull", outcome)

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, float]]:
        with self._lock:
            return dict(self.outcomes), dict(self.seconds)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(
    counters: OutcomeCounters,
    accessor: ModelAccessor,
    now: float,
    abandoned: Mapping[str, int] | None = None,
) -> str:
    """The Prometheus text exposition of the counters, of the calls abandoned after a
    timeout that still run (by engine), and of the objects' states."""
    from xos_runtime.engines import collect_status

    outcomes, seconds = counters.snapshot()
    lines = [
        "# HELP xos_runtime_outcomes_total Units of work finished, by engine and outcome.",
        "# TYPE xos_runtime_outcomes_total counter",
    ]
    for (engine, kind), n in sorted(outcomes.items()):
        lines.append(f'xos_runtime_outcomes_total{{engine="{engine}",outcome="{kind}"}} {n}')
    lines += [
        "# HELP xos_runtime_call_seconds_total Time spent in plugin calls, by engine.",
        "# TYPE xos_runtime_call_seconds_total counter",
    ]
    for engine, total in sorted(seconds.items()):
        lines.append(f'xos_runtime_call_seconds_total{{engine="{engine}"}} {total:.6f}')
    lines += [
        "# HELP xos_runtime_abandoned_calls Calls abandoned after a timeout that have not "
        "returned yet, by engine.",
        "# TYPE xos_runtime_abandoned_calls gauge",
    ]
    for engine, n in sorted((abandoned or {}).items()):
        lines.append(f'xos_runtime_abandoned_calls{{engine="{engine}"}} {n}')
    lines += [
        "# HELP xos_runtime_objects Objects in the store, by model and sync state.",
        "# TYPE xos_runtime_objects gauge",
    ]
    report = collect_status(accessor, now)
    for model, counts in sorted(report.counts.items()):
        for state, n in sorted(counts.items()):
            if state != "total":
                lines.append(f'xos_runtime_objects{{model="{_label(model)}",state="{state}"}} {n}')
    return "\n".join(lines) + "\n"


class MetricsServer:
    """`/metrics` and `/healthz` on a daemon thread; `port` 0 picks a free port."""

    def __init__(
        self,
        host: str,
        port: int,
        counters: OutcomeCounters,
        accessor: ModelAccessor,
        *,
        healthy: Callable[[], bool],
        clock: Callable[[], float],
        abandoned: Callable[[], Mapping[str, int]] = dict,
    ):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    try:
                        body = render_metrics(counters, accessor, clock(), abandoned())
                    except Exception as exc:  # the store is down: say so, do not crash
                        self._send(503, f"store unavailable: {exc}\n")
                        return
                    self._send(200, body, "text/plain; version=0.0.4")
                elif self.path == "/healthz":
                    ok = outer.check(healthy)
                    self._send(200 if ok else 503, "ok\n" if ok else "unhealthy\n")
                else:
                    self._send(404, "not found\n")

            def _send(self, code: int, body: str, ctype: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("metrics endpoint: " + format, *args)

        self._accessor = accessor
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="xos-runtime-metrics", daemon=True
        )

    def check(self, engines_alive: Callable[[], bool]) -> bool:
        """Healthy: every engine thread runs and the store answers."""
        try:
            return engines_alive() and self._accessor.check_db_connection_okay()
        except Exception:
            return False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
