"""Fixtures for the XOS compatibility tests: the compat plugin really pip-installed, a copy of
the sample XOS-style service, a loopback HTTP server standing in for its backend, and the
runtime as a subprocess.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from installed import plugins_line

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPAT_SOURCE = REPO_ROOT / "plugins" / "xos-runtime-xos-compat"
SAMPLE_SERVICE = REPO_ROOT / "tests" / "fixtures" / "xos_services" / "widget"

#: Top-level modules the compat distribution and the sample service bring in.
COMPAT_MODULES = (
    "xossynchronizer",
    "synchronizers",
    "xosconfig",
    "xoskafka",
    "xosapi",
    "multistructlog",
    "helpers",
)


@pytest.fixture(scope="session")
def compat_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """xos-runtime-xos-compat installed (not editable) into a target directory of its own."""
    root = tmp_path_factory.mktemp("compat-dist")
    copy = root / "src"
    shutil.copytree(COMPAT_SOURCE, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = root / "target"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(copy),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"installing xos-runtime-xos-compat failed:\n{result.stdout}{result.stderr}")
    return target


@pytest.fixture
def _only_fixture_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the suite's filter: these tests need the compat distribution's entry points
    (they still see neither the demo nor any other installed plugin)."""
    from xos_runtime.plugins import entrypoints, manager

    real = entrypoints.entry_points_of

    def compat_only(group: str) -> list[Any]:
        keep = []
        for ep in real(group):
            dist, _version = entrypoints.distribution_of(ep)
            if dist in (None, "xos-runtime", "xos-runtime-xos-compat"):
                keep.append(ep)
        return keep

    monkeypatch.setattr(manager, "entry_points_of", compat_only)


@pytest.fixture
def compat(compat_target: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The compat distribution importable in this process; sys.path and the XOS modules are
    restored afterwards (plugin directories put their parents on sys.path for good)."""
    saved_path = list(sys.path)
    monkeypatch.syspath_prepend(str(compat_target))
    importlib.invalidate_caches()
    yield compat_target
    from xos_runtime_xos_compat import binding  # before the path goes: a test may not have
    from xos_runtime_xos_compat.config import Config  # imported the plugin's own package

    sys.path[:] = saved_path
    binding.unbind()
    Config.clear()
    for name in list(sys.modules):
        if name.split(".")[0] in COMPAT_MODULES or name.startswith("xos_runtime_xos_compat"):
            del sys.modules[name]


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A copy of the sample XOS-style service; its config.yaml keeps the store beside it.
    Other plugin distributions installed here (the quick start's demo) are turned off, as
    an operator with other plugins installed would (`installed.py`)."""
    folder = tmp_path / "widget"
    shutil.copytree(SAMPLE_SERVICE, folder, ignore=shutil.ignore_patterns("*.db", "__pycache__"))
    with_plugins(folder)
    return folder


def with_plugins(service: Path, *settings: str) -> None:
    """The service's config as published, with the `plugins` section the tests need."""
    config = service / "config.yaml"
    published = (SAMPLE_SERVICE / "config.yaml").read_text()
    config.write_text(published + plugins_line(*settings))


class Backend:
    """A REST backend on loopback: records every call, answers like a small widget API.

    POST /widgets -> 201 {"id": n} (500 "backend exploded" for color "broken");
    PUT /widgets/<id> -> 200 {"id": id}; DELETE /widgets/<id> -> 204.
    """

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                return json.loads(raw) if raw else None

            def _answer(self, code: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                if isinstance(body, str):
                    data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Any:
                body = self._body()
                with backend._lock:
                    backend.calls.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "json": body,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                return body

            def do_POST(self) -> None:
                body = self._record()
                if body and body.get("color") == "broken":
                    self._answer(500, "backend exploded")
                    return
                with backend._lock:
                    new_id = backend._next_id
                    backend._next_id += 1
                self._answer(201, {"id": new_id})

            def do_PUT(self) -> None:
                self._record()
                self._answer(200, {"id": int(self.path.rsplit("/", 1)[1])})

            def do_DELETE(self) -> None:
                self._record()
                self._answer(204)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> list[tuple[str, str, Any]]:
        """The calls so far as (method, path, json), forgetting them."""
        with self._lock:
            calls, self.calls = self.calls, []
        return [(c["method"], c["path"], c["json"]) for c in calls]


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def run_service(compat_target: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`python -m xos_runtime <args>` as a subprocess, the compat distribution on its path."""

    def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(compat_target), str(REPO_ROOT)]),
        }
        env.pop("XOS_CONFIG_FILE", None)
        return subprocess.run(
            [sys.executable, "-m", "xos_runtime", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
