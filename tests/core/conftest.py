"""Fixtures of the core's tests: a project with users, and a real `core serve` process."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cli.conftest import REPO_ROOT, store_snapshot
from installed import plugins_line
from loguru import logger

from xos_runtime.cli.main import main
from xos_runtime.store import ModelAccessor, open_store

XPROTO = """\
option app_label = "coretest";

message Site (XOSBase) {
    required string name = 1 [max_length = 32];
    optional bool enabled = 2 [default = True];
    optional int32 quota = 3;
    optional double ratio = 4;
}

message Slice (XOSBase) {
    required string name = 1 [max_length = 32];
    required manytoone site->Site:slices = 2;
    optional manytoone backup->Site:backups = 3;
}
"""

#: A file without `app_label`: its models are under `/xosapi/v1/core/`.
PLAIN_XPROTO = """\
message Widget (XOSBase) {
    optional string note = 1;
    optional uint64 size = 2;
}
"""

PASSWORDS = {"alice": "alice-secret", "vsg": "vsg-secret"}


class Project:
    """A folder with `config.yaml`, `models/` and the store `store.db`."""

    def __init__(self, root: Path, extra: str = ""):
        self.root = root
        (root / "models").mkdir(parents=True)
        (root / "models" / "coretest.xproto").write_text(XPROTO)
        (root / "models" / "plain.xproto").write_text(PLAIN_XPROTO)
        self.write_config(extra)

    def write_config(self, extra: str = "", endpoint: str = "sqlite:///store.db") -> None:
        text = f"name: coretest\nmodels_dir: models\naccessor: {{endpoint: '{endpoint}'}}\n"
        self.config.write_text(text + plugins_line() + extra)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.store}"

    def cli(self, *argv: str, stdin: str = "") -> tuple[int, str]:
        """`xos-runtime ARGV -C config` in this process; its exit code and standard output."""
        out = io.StringIO()
        old_stdin = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out):
                code = main([*argv, "-C", str(self.config)])
        finally:
            sys.stdin = old_stdin
            logger.remove()
            logger.add(sys.stderr)
        return code, out.getvalue()

    def add_users(self) -> None:
        for name, password in PASSWORDS.items():
            extra = ["--synchronizer"] if name == "vsg" else []
            code, _ = self.cli(
                "core", "user", "add", name, *extra, "--password-stdin", stdin=password
            )
            assert code == 0

    def token(self, name: str) -> str:
        code, out = self.cli("core", "token", "create", name)
        assert code == 0
        return out.strip()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("XOS_CONFIG_FILE", None)
    return env


class Core:
    """A running `python -m xos_runtime core serve` and a way to call it."""

    def __init__(
        self, project: Project, *, scheme_ok: str = "http", verify: Any = True, port: int = 0
    ):
        self.project = project
        self.verify = verify
        self.log = project.root / f"core-{time.monotonic_ns()}.log"
        self._stderr = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xos_runtime",
                "core",
                "serve",
                "-C",
                str(project.config),
                "--port",
                str(port),
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.url = self._wait_for_url(scheme_ok)
        self._wait_healthy()

    def _wait_for_url(self, scheme: str, timeout: float = 30.0) -> str:
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(
                f"core serve said nothing in {timeout} s: {self.stderr()}"
            ) from None
        if not line.startswith(f"serving on {scheme}://"):
            self.stop()
            raise AssertionError(f"core serve: {line!r}; {self.stderr()}")
        return line.split()[-1]

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=5, verify=self.verify).ok:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"core serve never became healthy: {self.stderr()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.log.read_text()

    def call(
        self, method: str, path: str, *, user: str | None = "alice", **kwargs: Any
    ) -> requests.Response:
        auth = (user, PASSWORDS[user]) if user is not None else None
        kwargs.setdefault("auth", auth)
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("verify", self.verify)
        if self.url.startswith("https:"):
            # A TLS connection kept alive holds the server's stop for its grace period
            # (`core.server.GRACE`): the tests close theirs.
            kwargs["headers"] = {"Connection": "close", **kwargs.get("headers", {})}
        return requests.request(method, self.url + path, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="session")
def core_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("core") / "proj")
    project.add_users()
    return project


@pytest.fixture(scope="session")
def core(core_project: Project) -> Iterator[Core]:
    """One server for the tests that share it (each creates the objects it needs)."""
    server = Core(core_project)
    yield server
    server.stop()
    assert server.proc.returncode == 0, f"exit {server.proc.returncode} on SIGTERM"
    assert "internal error" not in server.stderr(), server.stderr()


@pytest.fixture()
def local(core_project: Project) -> Iterator[ModelAccessor]:
    """The shared core's store, opened in the test's process (to check what went over HTTP)."""
    acc = open_store(core_project.url)
    yield acc
    acc.close()


def snapshot(project: Project) -> Any:
    return store_snapshot(project.url)
