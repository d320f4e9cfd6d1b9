"""Serving the core's application with uvicorn: plain HTTP, or TLS when the config says."""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
from collections.abc import Iterator

import uvicorn
from loguru import logger
from starlette.applications import Starlette

from xos_runtime.config import Settings
from xos_runtime.core.app import build_app
from xos_runtime.core.users import Users
from xos_runtime.exceptions import ConfigError
from xos_runtime.store import ModelAccessor

__all__ = ["serve"]

#: Seconds requests in flight get to finish after SIGINT/SIGTERM. A client that keeps a
#: connection open without a request (or a TLS handshake that never ends) holds no longer.
GRACE = 5


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket. Its protocol is named (IPPROTO_TCP, not 0): connections accepted
    from it inherit it, and asyncio sets TCP_NODELAY only on sockets whose protocol is TCP.
    Without it, Nagle's algorithm holds a response's body until the client acknowledges its
    headers, which a client delays by up to 40 ms: every request took 44 ms on loopback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings, accessor: ModelAccessor, *, host: str | None = None, port: int | None = None
) -> None:
    """Serve until SIGINT or SIGTERM. Says `serving on URL` on standard output once the
    socket listens (port 0 picks a free one, and the line tells which)."""
    host = host if host is not None else settings.core.host
    port = port if port is not None else settings.core.port
    app = build_app(accessor, Users(accessor.store), retention=settings.event_bus.retention)
    try:
        _run(app, settings, host, port, accessor.store.url.render_as_string(hide_password=True))
    finally:
        app.state.feed.close()
        app.state.events.close()
        sys.stdout.flush()


def _run(app: Starlette, settings: Settings, host: str, port: int, store: str) -> None:
    core = settings.core
    config = uvicorn.Config(
        app,
        ssl_certfile=core.tls_cert,
        ssl_keyfile=core.tls_key,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACE,
    )
    try:
        config.load()  # the TLS files are read here: a bad one is the config's fault
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use {core.tls_cert} and {core.tls_key} for TLS: {exc}",
            file=settings.source,
            key="core.tls_cert",
        ) from None
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            file=settings.source,
            key="core.port",
        ) from None
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if core.tls_cert is not None else "http"
    url = f"{scheme}://{shown}:{sock.getsockname()[1]}"
    logger.info("core: serving {} on {}", store, url)
    print(f"serving on {url}", flush=True)
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server, for which a stop on SIGTERM or SIGINT is the normal end (exit 0, as
    `run`'s): uvicorn raises the signal again once it has shut down, which would end the
    process by the signal instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
