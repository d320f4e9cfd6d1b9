"""Change notifications: how engines learn that the store changed without polling it.

Every committed write publishes the names of the models it touched. Subscribers in the same
process are woken directly. Subscribers in other processes on the same machine (a CLI
`objects update` while `xos-runtime run` is running) are woken through Unix datagram sockets
in a channel folder derived from the database: each subscription binds one socket there, and a
publisher sends one datagram to each. A notification is a hint, never the only source of
truth: engines still re-read the store, and keep a slow fallback poll for writers that do not
publish (another tool writing SQL directly).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any

_counter = itertools.count()


def channel_dir_for(database_path: str) -> str:
    """The folder shared by every process that opens `database_path`.

    It lives under the temp dir (socket paths are limited to ~100 bytes) and is named after a
    hash of the absolute database path.
    """
    digest = hashlib.sha1(os.path.abspath(database_path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"xos-runtime-notify-{os.getuid()}", digest)


class Subscription:
    """One listener. `wait()` blocks until a change is published or the timeout passes."""

    def __init__(self, hub: ChangeHub):
        self._hub = hub
        self._cond = threading.Condition()
        self._changed: set[str] = set()
        self._signalled = False
        self._closed = False
        self._sock: socket.socket | None = None
        self._path: str | None = None
        self._reader: threading.Thread | None = None
        if hub.channel_dir is not None:
            self._listen(hub.channel_dir)

    def _listen(self, channel_dir: str) -> None:
        os.makedirs(channel_dir, mode=0o700, exist_ok=True)
        self._path = os.path.join(channel_dir, f"{os.getpid()}-{next(_counter)}.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self._path)
        self._sock = sock
        self._reader = threading.Thread(
            target=self._read_loop, name="xos-runtime-notify", daemon=True
        )
        self._reader.start()

    def _read_loop(self) -> None:
        assert self._sock is not None
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if data == b"\0close":
                return
            self.post(m for m in data.decode("utf-8", "replace").split(",") if m)

    def post(self, models: Iterable[str]) -> None:
        """Record a change and wake the waiter (called by the hub and the socket reader)."""
        with self._cond:
            self._changed.update(models)
            self._signalled = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> set[str] | None:
        """The models changed since the last call, or None if nothing came within `timeout`."""
        with self._cond:
            if not self._signalled:
                self._cond.wait_for(lambda: self._signalled or self._closed, timeout)
            if not self._signalled:
                return None
            changed, self._changed, self._signalled = self._changed, set(), False
            return changed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub._remove(self)
        with self._cond:
            self._cond.notify_all()
        if self._sock is not None and self._path is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(b"\0close", self._path)
            if self._reader is not None:
                self._reader.join(timeout=1)
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeHub:
    """Publishes committed changes to subscribers in this and (optionally) other processes.

    `channel_dir` None keeps notifications inside the process (an in-memory database, or a
    backend with a notification channel of its own).
    """

    def __init__(
        self,
        channel_dir: str | None = None,
        listener: Callable[[Callable[[set[str]], None]], Any] | None = None,
    ):
        self.channel_dir = channel_dir
        # Builds a listener for changes made elsewhere (PostgreSQL LISTEN), started with the
        # first subscription: `listener(deliver)` returns an object with `start()`, `stop()`.
        self._listener_factory = listener
        self._listener: Any = None
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._own_prefix = f"{os.getpid()}-"
        self._out: socket.socket | None = None

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        started = None
        with self._lock:
            self._subs.append(sub)
            if self._listener_factory is not None and self._listener is None:
                started = self._listener = self._listener_factory(self.deliver)
        if started is not None:
            started.start()
        return sub

    def deliver(self, models: set[str]) -> None:
        """Wake the local subscribers for a change made by another process."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.post(models)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, models: Iterable[str]) -> None:
        names = set(models)
        if not names:
            return
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.post(names)
        if self.channel_dir is not None:
            self._send_remote(",".join(sorted(names)).encode())

    def _send_remote(self, payload: bytes) -> None:
        assert self.channel_dir is not None
        try:
            entries = os.listdir(self.channel_dir)
        except FileNotFoundError:
            return
        targets = [e for e in entries if e.endswith(".sock") and not e.startswith(self._own_prefix)]
        if not targets:
            return
        if self._out is None:
            self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._out.setblocking(False)
        for name in targets:
            path = os.path.join(self.channel_dir, name)
            try:
                self._out.sendto(payload[:60000], path)
            except ConnectionRefusedError:
                # The listener's process died without cleaning up: remove its socket.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            except OSError as exc:
                # A full queue means the listener already has a wake-up pending.
                if exc.errno not in (errno.EAGAIN, errno.ENOENT, errno.ENOBUFS):
                    raise

    def close(self) -> None:
        with self._lock:
            subs = list(self._subs)
            listener, self._listener = self._listener, None
        for sub in subs:
            sub.close()
        if listener is not None:
            listener.stop()
        if self._out is not None:
            self._out.close()
            self._out = None
