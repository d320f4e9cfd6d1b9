"""The HTTP endpoint of a running host: one `ThreadingHTTPServer` on a daemon thread.

Routes: `/metrics` (Prometheus text), `/healthz` (liveness: 200 while the process serves),
`/readyz` (200 `ready`, or 503 with one line per thing not ready), `/` (the status page),
and the page's JSON: `/api/graph`, `/api/status`, `/api/objects/<Model>` and
`/api/objects/<Model>/<id>`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST

from xos_runtime.observe.observed import ObservedHost
from xos_runtime.observe.page import graph_view, model_view, object_view, status_view

if TYPE_CHECKING:
    from xos_runtime.store.remote import RemoteAccessor

__all__ = ["StatusServer"]


class StatusServer:
    """Serves the metrics, health and status page of `observed`; `port` 0 picks a free port
    (see `port`). `not_ready` says what keeps it from being ready ([] when ready)."""

    def __init__(
        self,
        host: str,
        port: int,
        observed: ObservedHost,
        *,
        metrics_text: Callable[[], bytes],
        not_ready: Callable[[], list[str]],
    ):
        self.observed = observed
        self.metrics_text = metrics_text
        self.not_ready = not_ready
        self.page = resources.files(__package__).joinpath("status.html").read_bytes()
        self._graph: bytes | None = None  # the model graph does not change while `run` runs
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    code, ctype, body = outer.answer(urlsplit(self.path).path)
                except Exception as exc:  # the store is down, say: answer, do not crash
                    logger.debug("status page: {} failed: {}", self.path, exc)
                    code, ctype, body = 503, "text/plain", f"unavailable: {exc}\n".encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("metrics endpoint: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="xos-runtime-metrics", daemon=True
        )

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """Status code, content type and body for a GET of `path`."""
        host = self.observed
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics_text()
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            problems = self.not_ready()
            if problems:
                return 503, "text/plain", ("\n".join(problems) + "\n").encode()
            return 200, "text/plain", b"ready\n"
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", self.page
        if path == "/api/graph":
            if self._graph is None:
                self._graph = _json(graph_view(host.graph))
            return 200, "application/json", self._graph
        # The views of the store read its tables: over a core, the core makes them.
        core = cast("RemoteAccessor", host.accessor) if host.accessor.remote else None
        view: dict[str, Any] | None
        if path == "/api/status":
            if core is not None:
                view = core.status_page()
            else:
                view = status_view(host.accessor, host.clock())
            return 200, "application/json", _json(view)
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:2] == ["api", "objects"] and len(parts) in (3, 4):
            if len(parts) == 3:
                if core is not None:
                    view = core.model_page(parts[2])
                else:
                    view = model_view(host.accessor, parts[2], host.clock())
            elif parts[3].isdigit():
                view = object_view(host.accessor, parts[2], int(parts[3]))
            else:
                view = None
            if view is not None:
                return 200, "application/json", _json(view)
        return 404, "text/plain", b"not found\n"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()
