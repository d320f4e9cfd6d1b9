"""`objects` and `status` with `accessor.endpoint: http://...`, and the start-up errors."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest
from installed import plugins_line

from xos_runtime.engines import collect_status
from xos_runtime.store import open_store

from .conftest import PASSWORDS, Core, Project


def remote_project(root: Path, url: str, user: str = "alice", extra: str = "") -> Project:
    """A folder whose config names the core (no models: they are the core's)."""
    project = Project(root)
    (root / "pw").write_text(PASSWORDS.get(user, "wrong") + "\n")
    project.config.write_text(
        f"name: remote\naccessor: {{endpoint: '{url}', username: {user}, password: '@pw'{extra}}}\n"
        + plugins_line()
    )
    return project


def test_objects_over_the_core(core: Core, core_project: Project, tmp_path: Path) -> None:
    project = remote_project(tmp_path / "remote", core.url)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, out = project.cli("objects", "create", "--json", "Site", f"name={name}", "quota=4")
    assert code == 0, out
    site = json.loads(out)
    assert site["name"] == name and site["quota"] == 4 and site["enabled"] is True
    code, out = project.cli("objects", "create", "--json", "Slice", "name=x", f"site={site['id']}")
    assert code == 0 and json.loads(out)["site"] == site["id"]

    code, out = project.cli("objects", "update", "--json", "Site", str(site["id"]), "quota=9")
    assert code == 0 and json.loads(out)["quota"] == 9
    code, out = project.cli("objects", "list", "--json", "Site", f"name={name}")
    assert code == 0 and [o["id"] for o in json.loads(out)] == [site["id"]]
    code, out = project.cli("objects", "list", "Site", f"name={name}")
    assert code == 0 and name in out and "QUOTA" in out
    code, out = project.cli("objects", "show", "Site", str(site["id"]))
    assert code == 0 and f"Site {site['id']}" in out

    # The core's own store says the same.
    local = open_store(core_project.url)  # with the models the store holds (others load some)
    try:
        assert local.Site.objects.get(id=site["id"]).quota == 9
    finally:
        local.close()

    code, out = project.cli("objects", "delete", "Site", str(site["id"]))
    assert code == 0 and out.strip() == f"Site {site['id']} deleted"
    code, out = project.cli("objects", "show", "Site", str(site["id"]))
    assert code == 2


def test_bad_input_over_the_core_is_one_line_exit_2(
    core: Core, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = remote_project(tmp_path / "remote", core.url)
    capsys.readouterr()
    code, _ = project.cli("objects", "create", "Slice", "name=x", "site=2147483000")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Site id 2147483000 does not exist" in err[0], err
    code, _ = project.cli("objects", "list", "Nope")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'Nope'" in err[0], err


def test_status_over_the_core(core: Core, core_project: Project, tmp_path: Path) -> None:
    project = remote_project(tmp_path / "remote", core.url)
    r = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "st-" + uuid.uuid4().hex[:8]})
    assert r.status_code == 201
    code, out = project.cli("status", "--json")
    assert code == 0, out
    remote = json.loads(out)
    store = open_store(core_project.url)
    try:
        local = collect_status(store, time.time()).to_dict()
    finally:
        store.close()
    assert remote["models"] == local["models"] and remote["models"]["Site"]["pending"] >= 1
    assert {(o["model"], o["id"]) for o in remote["objects"]} == {
        (o["model"], o["id"]) for o in local["objects"]
    }
    code, out = project.cli("status")
    assert code == 0 and "Site:" in out and "pending" in out


def test_a_wrong_password_is_one_line_naming_the_user_and_the_core(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = Project(tmp_path / "served")
    served.add_users()
    core = Core(served)  # its own: failed logins count against loopback (429 after 5)
    try:
        project = remote_project(tmp_path / "remote", core.url, user="mallory")
        capsys.readouterr()
        for argv in (("objects", "list", "Site"), ("status",)):
            code, _ = project.cli(*argv)
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1, err
            assert "'mallory'" in err[0] and core.url in err[0], err
    finally:
        core.stop()


def test_a_core_that_never_answers_is_waited_for_then_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    project = remote_project(tmp_path / "remote", url, extra=", retry_for: 0.5")
    capsys.readouterr()
    code, _ = project.cli("objects", "list", "Site")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert sum("does not answer" in line and "waiting" in line for line in err) == 1, err
    assert url in err[-1] and "did not answer for 0.5 s" in err[-1], err


def test_commands_of_a_synchronizer_over_a_core(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run`, `plan` and `check` over a core of their own (the shared one holds the fuzz
    test's leases, one of them with `sync.claims: false`, which excludes every `run`)."""
    served = Project(tmp_path / "core")
    served.add_users()
    own = Core(served)
    try:
        project = remote_project(tmp_path / "remote", own.url, user="vsg")
        for command in (("run", "--once"), ("plan",), ("check",)):
            capsys.readouterr()
            code, out = project.cli(*command)
            assert code == 0, (command, out, capsys.readouterr().err)
    finally:
        own.stop()


@pytest.mark.parametrize("user", ["alice", "mallory"])
def test_a_run_as_a_refused_user_exits_2_naming_it(
    user: str, core: Core, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """alice is no synchronizer (403 on the leases), mallory has a wrong password (401)."""
    project = remote_project(tmp_path / "remote", core.url, user=user)
    capsys.readouterr()
    code, _ = project.cli("run", "--once")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert user in err[-1] and core.url in err[-1], err


def test_a_core_serves_a_database_not_another_core(
    core: Core, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = remote_project(tmp_path / "remote", core.url, user="vsg")
    capsys.readouterr()
    code, _ = project.cli("core", "serve", "--port", "0")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "accessor.endpoint" in err[0] and "not a core" in err[0], err


def test_the_core_tells_its_models_and_status_to_its_users(core: Core) -> None:
    assert core.call("GET", "/xosapi/v1/models", user=None).status_code == 401
    assert core.call("GET", "/xosapi/v1/status", user=None).status_code == 401
    served = core.call("GET", "/xosapi/v1/models").json()
    assert served["paths"]["Site"] == "/xosapi/v1/coretest/sites"
    assert served["paths"]["Widget"] == "/xosapi/v1/core/widgets"
    slice_ = next(m for m in served["models"] if m["name"] == "Slice")
    assert [x["name"] for x in slice_["links"]] == ["site", "backup"]
    status = core.call("GET", "/xosapi/v1/status").json()
    assert set(status) == {"models", "objects", "processes"}
    paths = core.call("GET", "/openapi.json").json()["paths"]
    assert "get" in paths["/xosapi/v1/models"] and "post" in paths["/xosapi/v1/models"]
    assert "/xosapi/v1/status" in paths


def test_core_version_is_checked_against_the_core_itself(
    core: Core, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = remote_project(tmp_path / "remote", core.url)
    project.config.write_text(project.config.read_text() + "core_version: '>=5.0.0'\n")
    capsys.readouterr()
    for argv in (("objects", "list", "Site"), ("status",)):
        code, _ = project.cli(*argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert "core_version" in err[0] and "4.0.4" in err[0], err
