"""`xos_runtime.connect()` on the stores the command line writes, and the other way round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import xos_runtime

from .conftest import REPO_ROOT, Cli, Project

READER = """
import json, sys
import xos_runtime

acc = xos_runtime.connect(sys.argv[1])
try:
    site = acc.Site.objects.get(name="s1")
    user = acc.User.objects.get(email="a@example.org")
    services = acc.Service.objects.all()
    print(json.dumps({
        "module": xos_runtime.__file__,
        "models": acc.models.names(),
        "sites": [(s.id, s.name, s.enabled, s.quota) for s in acc.Site.objects.all()],
        "user_site": user.site.name,
        "site_users": [u.email for u in site.users.all()],
        "services": [(s.id, s.name, s.leaf_model_name) for s in services],
        "leaf": [(s.leaf_model.model_name, getattr(s.leaf_model, "vlan", None)) for s in services],
        "deleted_sites": [s.name for s in acc.Site.deleted_objects.all()],
    }))
finally:
    acc.close()
"""


@pytest.mark.usefixtures("seeded")
def test_connect_url_in_another_process_sees_what_the_cli_wrote(xrt: Cli, project: Project) -> None:
    assert xrt("objects", "create", "Site", "name=gone", "enabled=false").code == 0
    assert xrt("objects", "delete", "Site", "2").code == 0
    assert xrt("objects", "create", "VSG", "name=v1", "vlan=3").code == 0

    proc = subprocess.run(
        [sys.executable, "-c", READER, project.url],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert Path(facts["module"]).is_relative_to(REPO_ROOT)
    assert facts["models"] == ["Site", "User", "Service", "VSG"]
    assert facts["sites"] == [[1, "s1", True, 5]]
    assert facts["user_site"] == "s1"
    assert facts["site_users"] == ["a@example.org"]
    assert facts["services"] == [[1, "v1", "VSG"]]
    assert facts["leaf"] == [["VSG", 3]]
    assert facts["deleted_sites"] == ["gone"]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "PathLike"])
def test_connect_config_file(xrt: Cli, project: Project, as_path: bool) -> None:
    acc = xos_runtime.connect(project.config if as_path else str(project.config))
    try:
        assert acc.store.endpoint == project.url  # relative URL, resolved against the config
        assert [s.name for s in acc.Site.objects.all()] == ["s1"]
        acc.Site.objects.create(name="via-connect", quota=7)
    finally:
        acc.close()

    rows = xrt("objects", "list", "--json", "Site").json()
    assert [(r["name"], r["quota"], r["enabled"]) for r in rows] == [
        ("s1", 5, True),
        ("via-connect", 7, True),
    ]


def test_connect_config_file_creates_the_store(xrt: Cli, project: Project) -> None:
    assert not project.store.exists()
    acc = xos_runtime.connect(project.config)
    try:
        assert acc.models.names() == ["Site", "User", "Service", "VSG"]
        assert len(acc.Site.objects.all()) == 0
    finally:
        acc.close()
    assert project.store.exists()
    assert xrt("objects", "list", "--json", "Site").json() == []


@pytest.mark.usefixtures("seeded")
def test_objects_written_through_connect_url_are_seen_by_the_cli(
    xrt: Cli, project: Project
) -> None:
    acc = xos_runtime.connect(project.url)
    try:
        site = acc.Site.objects.create(name="s2", enabled=False)
        user = acc.User(email="b@example.org", site=site)
        user.save()
        vsg = acc.VSG.objects.create(name="v1", vlan=12)
        ids = (site.id, user.id, vsg.id)
    finally:
        acc.close()

    assert [r["name"] for r in xrt("objects", "list", "--json", "Site").json()] == ["s1", "s2"]
    assert [r["name"] for r in xrt("objects", "list", "--json", "Site", "enabled=no").json()] == [
        "s2"
    ]
    shown = xrt("objects", "show", "--json", "User", str(ids[1])).json()
    assert (shown["email"], shown["site"]) == ("b@example.org", ids[0])
    services = xrt("objects", "list", "--json", "Service").json()
    assert [(s["id"], s["leaf_model_name"]) for s in services] == [(ids[2], "VSG")]

    # and a soft delete through the accessor is one for the CLI too
    acc = xos_runtime.connect(project.url)
    try:
        acc.Site.objects.get(id=ids[0]).delete()
    finally:
        acc.close()
    assert [r["name"] for r in xrt("objects", "list", "--json", "Site").json()] == ["s1"]
    assert [r["email"] for r in xrt("objects", "list", "--json", "User").json()] == [
        "a@example.org"
    ]
