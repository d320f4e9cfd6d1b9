"""The demo plugin's own tests, written with `xos_runtime.testing` only, as a third party's.

Each test runs the demo's hooks, sync steps and policy in a runtime of its own, on a
temporary store, under a fake clock; the steps write their JSON files under the harness's
temporary folder (`<h.path>/demo-output`, from the demo's `xos_runtime_configure`).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from xos_runtime_demo import hooks
from xos_runtime_demo.policies import SitePolicy
from xos_runtime_demo.steps import SyncInstance, SyncSite, SyncSlice, SyncUser

from xos_runtime.testing import Harness

#: The demo's plugins, given directly: what its entry points name.
DEMO = [hooks, SyncSite, SyncUser, SyncSlice, SyncInstance, SitePolicy]


@pytest.fixture(autouse=True)
def _demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XOS_DEMO_OUTPUT", raising=False)
    monkeypatch.delenv("XOS_DEMO_SEED", raising=False)


@pytest.fixture
def demo() -> Iterator[Harness]:
    with Harness(DEMO) as h:
        yield h


def record(h: Harness, model: str, obj: Any) -> Any:
    """The JSON file of `obj`, read; None when there is none."""
    path: Path = h.path / "demo-output" / model / f"{obj.id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def broken_site(h: Harness) -> Any:
    return h.accessor.Site.objects.get(name="broken-site")


def test_the_seeded_sites_sync_except_the_broken_one(demo: Harness) -> None:
    assert demo.run_until_idle().exit_code == 1
    broken = broken_site(demo)
    assert demo.state(broken) == "error"
    assert "starts with 'broken'" in demo.reload(broken).backend_status
    for user in broken.users.all():
        assert demo.state(user) == "held_back"
        assert record(demo, "User", user) is None
    for name in ("ONF Menlo", "Stanford"):
        site = demo.accessor.Site.objects.get(name=name)
        assert demo.state(site) == "ok"
        assert record(demo, "Site", site) == {
            "id": site.id,
            "model": "Site",
            "name": name,
            "login_base": site.login_base,
            "enabled": True,
        }
        for user in site.users.all():
            assert record(demo, "User", user) == {
                "id": user.id,
                "model": "User",
                "email": user.email,
                "site_id": site.id,
            }
    assert [c.object_id for c in demo.calls_of(SyncSite, kind="error")] == [broken.id]
    assert not demo.calls_of(SyncUser, kind="error")


def test_the_policy_derives_a_login_base_once_per_new_site(demo: Harness) -> None:
    demo.run_until_idle()
    sites = {s.name: s for s in demo.accessor.Site.objects.all()}
    assert sorted(c.object_id for c in demo.calls_of(SitePolicy, "handle_create")) == sorted(
        s.id for s in sites.values()
    )
    assert sites["Stanford"].login_base == "stanford"
    assert sites["ONF Menlo"].login_base == "onf"  # given: kept
    assert record(demo, "Site", sites["Stanford"])["login_base"] == "stanford"


def test_the_broken_site_is_retried_with_growing_backoff(demo: Harness) -> None:
    demo.run_until_idle()
    broken = broken_site(demo)
    assert demo.retry_in(broken) == 1.0
    demo.run_until_idle()
    assert len(demo.calls_of(SyncSite, kind="error")) == 1  # not before its time
    demo.advance(1.0)
    demo.run_until_idle()
    assert len(demo.calls_of(SyncSite, kind="error")) == 2
    assert demo.retry_in(broken) == 2.0


def test_fixing_the_broken_site_syncs_it_and_its_dependents_at_once(demo: Harness) -> None:
    demo.run_until_idle()
    broken = broken_site(demo)
    broken.name = "fixed-site"
    broken.save()
    assert demo.run_until_idle().exit_code == 0  # no backoff to wait out: it changed
    assert record(demo, "Site", broken)["name"] == "fixed-site"
    for sl in broken.slices.all():
        assert record(demo, "Slice", sl) is not None
        for inst in sl.instances.all():
            assert record(demo, "Instance", inst)["image"] == "ubuntu-22.04"


def test_deleting_a_site_removes_its_files_and_its_dependents(demo: Harness) -> None:
    demo.run_until_idle()
    site = demo.accessor.Site.objects.get(name="Stanford")
    users = list(site.users.all())
    assert record(demo, "Site", site) is not None
    site.delete()
    demo.run_until_idle()
    assert demo.state(site) == "gone"
    assert record(demo, "Site", site) is None
    assert all(record(demo, "User", u) is None for u in users)
    deleted = {c.step for c in demo.calls if c.method == "delete_record"}
    assert deleted == {"SyncSite", "SyncUser", "SyncSlice", "SyncInstance"}


def test_seeding_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XOS_DEMO_SEED", "0")
    with Harness(DEMO) as h:
        assert not h.accessor.Site.objects.all()
        site = h.accessor.Site.objects.create(name="Hello, World!")
        h.run_until_idle()
        assert h.reload(site).login_base == "helloworld"
        assert [c.method for c in h.calls] == ["handle_create", "sync_record"]


def _installed() -> bool:
    try:
        importlib.metadata.distribution("xos-runtime-demo")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="xos-runtime-demo is not installed")
def test_the_installed_distribution_runs_by_name() -> None:
    with Harness(["xos-runtime-demo"]) as h:
        assert h.run_until_idle().exit_code == 1
        assert len(h.calls_of(SyncSite, kind="success")) == 2
