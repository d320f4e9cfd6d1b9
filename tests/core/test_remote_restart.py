"""A script over a core that stops and comes back, and a core over TLS."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

import xos_runtime
from xos_runtime.store import open_store
from xos_runtime.store.remote import RemoteAccessor

from .conftest import PASSWORDS, Core, Project
from .test_remote_cli import remote_project
from .test_tls import self_signed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_script_carries_on_when_the_core_comes_back(tmp_path: Path) -> None:
    served = Project(tmp_path / "served")
    served.add_users()
    port = _free_port()
    core = Core(served, port=port)
    url = core.url.replace("://", f"://alice:{PASSWORDS['alice']}@")
    acc = xos_runtime.connect(url)
    assert isinstance(acc, RemoteAccessor)
    total = 40
    made: list[int] = []
    failed: list[BaseException] = []

    def script() -> None:
        try:
            for i in range(total):
                site = acc.Site.objects.create(name=f"r{i}", quota=i)
                site.quota = i + 1000
                site.save()  # a PUT: retried on every failure
                made.append(site.id)
        except BaseException as exc:  # reported by the test
            failed.append(exc)

    worker = threading.Thread(target=script)
    worker.start()
    try:
        _wait_for(lambda: len(made) >= 5 or failed, 30, "the first objects")
        core.stop()
        _wait_for(lambda: acc.store.client.waiting or failed, 30, "the script to wait")
        assert not failed, failed
        core = Core(served, port=port)
        worker.join(60)
        assert not worker.is_alive() and not failed, failed
    finally:
        worker.join(60)
        acc.close()
        core.stop()
    assert len(made) == total and len(set(made)) == total
    local = open_store(served.url)
    try:
        rows = list(local.Site.objects.all())
        assert sorted(o.name for o in rows) == sorted(f"r{i}" for i in range(total))  # once each
        assert all(o.quota == int(o.name[1:]) + 1000 for o in rows)
    finally:
        local.close()


def test_a_core_over_tls_is_trusted_through_ca_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = self_signed(tmp_path)
    served = Project(tmp_path / "served")
    served.write_config(f"core: {{tls_cert: {cert}, tls_key: {key}}}\n")
    served.add_users()
    core = Core(served, scheme_ok="https", verify=str(cert))
    try:
        trusted = remote_project(tmp_path / "trusted", core.url, extra=f", ca_file: {cert}")
        code, out = trusted.cli("objects", "create", "Site", "name=tls")
        assert code == 0, out
        code, out = trusted.cli("objects", "list", "Site", "name=tls")
        assert code == 0 and "tls" in out

        untrusted = remote_project(tmp_path / "untrusted", core.url)
        capsys.readouterr()
        code, _ = untrusted.cli("objects", "list", "Site")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and core.url in err[0], err
        assert "TLS failed" in err[0] and "certificate verify failed" in err[0], err
    finally:
        core.stop()
