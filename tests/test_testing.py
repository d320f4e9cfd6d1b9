"""`xos_runtime.testing`: the harness plugin authors test with, each capability exercised.

The steps and policies below are given to the harness as classes, with their models as
xproto text; `test_installed_plugins_*` name installed fixture distributions instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xos_runtime import EventStep, ModelPolicy, PullStep, SyncStep, hookimpl
from xos_runtime.exceptions import PluginError
from xos_runtime.testing import Call, FakeClock, Harness

MODELS = """
message Site (XOSBase) {
    required string name = 1;
    optional string note = 2;
}
message User (XOSBase) {
    required string email = 1;
    required manytoone site->Site:users = 2;
}
"""

#: Names of the sites whose sync fails.
FAILING: set[str] = set()
#: Failures left for the messages of each key before `SiteEvents` handles them.
EVENT_FAILURES: dict[bytes, int] = {}
#: Hook calls seen by `Lifecycle`.
LIFECYCLE: list[str] = []


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj: Any) -> None:
        if obj.name in FAILING:
            raise Exception(f"backend refused {obj.name}")

    def delete_record(self, obj: Any) -> None:
        pass


class SyncUser(SyncStep):
    observes = "User"

    def sync_record(self, obj: Any) -> None:
        pass


class NotePolicy(ModelPolicy):
    model_name = "Site"

    def handle_create(self, site: Any) -> None:
        site.note = "created"
        site.save(update_fields=["note"])

    def handle_update(self, site: Any) -> None:
        pass


class SiteEvents(EventStep):
    topics = ["sites"]

    def process_event(self, event: Any) -> None:
        left = EVENT_FAILURES.get(event.key, 0)
        if left:
            EVENT_FAILURES[event.key] = left - 1
            raise Exception("the message came too early")
        self.model_accessor.Site.objects.create(name=json.loads(event.value)["name"])


class PullSites(PullStep):
    interval = 10

    def pull_records(self) -> None:
        pass


class Lifecycle:
    """Hook implementations on an object: seeds a site at start-up."""

    @hookimpl
    def xos_runtime_startup(self, runtime: Any) -> None:
        LIFECYCLE.append("startup")
        runtime.accessor.Site.objects.create(name="seeded")

    @hookimpl
    def xos_runtime_shutdown(self) -> None:
        LIFECYCLE.append("shutdown")


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    FAILING.clear()
    EVENT_FAILURES.clear()
    LIFECYCLE.clear()


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness([SyncSite, SyncUser], models=MODELS) as h:
        yield h


def kinds(calls: list[Call]) -> list[str]:
    return [c.kind for c in calls]


# -- importing ------------------------------------------------------------------------------------


def test_the_kit_imports_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None\n"
        "import xos_runtime.testing\n"
        "assert xos_runtime.testing.Harness\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- sync steps, backoff and the clock ------------------------------------------------------------


def test_a_sync_call_is_recorded_with_its_object_and_time(harness: Harness) -> None:
    site = harness.accessor.Site.objects.create(name="menlo")
    summary = harness.run_until_idle()
    assert summary.exit_code == 0
    [call] = harness.calls
    assert (call.engine, call.step, call.method, call.kind) == (
        "sync",
        "SyncSite",
        "sync_record",
        "success",
    )
    assert (call.model, call.object_id, call.time) == ("Site", site.id, harness.now)
    assert harness.reload(site).backend_code == 1
    assert harness.state(site) == "ok"
    assert harness.retry_in(site) is None


def test_a_failure_backs_off_until_the_clock_is_advanced(harness: Harness) -> None:
    FAILING.add("bad")
    bad = harness.accessor.Site.objects.create(name="bad")
    user = harness.accessor.User.objects.create(email="u@bad", site=bad)
    start = harness.now
    assert harness.run_until_idle().exit_code == 1
    assert harness.state(bad) == "error"
    assert harness.reload(bad).backend_status == "backend refused bad"
    assert harness.retry_in(bad) == 1.0  # sync.backoff.initial, without jitter
    # the user was held back, not called
    assert [c.kind for c in harness.outcomes if c.step == "SyncUser"][:1] == ["blocked"]
    assert not harness.calls_of(SyncUser)

    harness.run_until_idle()
    harness.advance(0.5)
    harness.run_until_idle()
    assert kinds(harness.calls_of(SyncSite)) == ["error"]  # still backing off

    harness.advance(0.5)
    harness.run_until_idle()
    calls = harness.calls_of(SyncSite, "sync_record")
    assert kinds(calls) == ["error", "error"]
    assert [c.time for c in calls] == [start, start + 1.0]
    assert harness.retry_in(bad) == 2.0  # the backoff grew

    FAILING.clear()
    harness.advance(harness.retry_in(bad) or 0)
    assert harness.run_until_idle().exit_code == 0
    assert kinds(harness.calls_of(SyncSite)) == ["error", "error", "success"]
    assert kinds(harness.calls_of(SyncUser)) == ["success"]
    assert harness.state(bad) == harness.state(user) == "ok"


def test_run_once_is_one_pass(harness: Harness) -> None:
    site = harness.accessor.Site.objects.create(name="a")
    harness.accessor.User.objects.create(email="u@a", site=site)
    summary = harness.run_once()
    assert summary.passes == 1
    assert {c.step for c in harness.calls} == {"SyncSite", "SyncUser"}
    harness.clear_calls()
    assert harness.calls == harness.outcomes == []
    harness.run_once()
    assert harness.calls == []


def test_a_deleted_object_is_deleted_then_gone(harness: Harness) -> None:
    site = harness.accessor.Site.objects.create(name="a")
    harness.run_until_idle()
    site.delete()
    assert harness.state(site) == "deleting"
    harness.run_until_idle()
    assert [c.method for c in harness.calls_of(SyncSite)] == ["sync_record", "delete_record"]
    assert harness.state(site) == "gone"
    with pytest.raises(LookupError, match=f"Site {site.id} is no longer in the store"):
        harness.reload(site)


# -- policies, events, pull steps ------------------------------------------------------------------


def test_a_policy_is_called_once_per_object_and_change() -> None:
    with Harness([SyncSite, NotePolicy], models=MODELS) as h:
        a = h.accessor.Site.objects.create(name="a")
        b = h.accessor.Site.objects.create(name="b")
        h.run_until_idle()
        creates = h.calls_of(NotePolicy, "handle_create")
        assert sorted(c.object_id for c in creates) == [a.id, b.id]
        assert {c.engine for c in creates} == {"policy"}
        assert h.reload(a).note == "created"
        h.run_until_idle()
        assert len(h.calls_of(NotePolicy)) == 2
        a.name = "a2"
        a.save()
        h.run_until_idle()
        assert [c.object_id for c in h.calls_of(NotePolicy, "handle_update")] == [a.id]


def test_a_published_message_reaches_the_event_step() -> None:
    with Harness([SiteEvents, SyncSite], models=MODELS) as h:
        h.publish("sites", json.dumps({"name": "from-kafka"}), key="k1")
        h.run_until_idle()
        [call] = h.calls_of(SiteEvents)
        assert (call.engine, call.method, call.topic, call.key, call.kind) == (
            "event",
            "process_event",
            "sites",
            b"k1",
            "success",
        )
        site = h.accessor.Site.objects.get(name="from-kafka")
        assert [c.object_id for c in h.calls_of(SyncSite)] == [site.id]


def test_a_failing_message_is_retried_once_the_clock_moves() -> None:
    EVENT_FAILURES[b"k"] = 1
    with Harness([SiteEvents], models=MODELS) as h:
        h.publish("sites", json.dumps({"name": "late"}), key="k")
        h.run_until_idle()
        h.run_until_idle()
        assert kinds(h.calls_of(SiteEvents)) == ["error"]
        assert not h.accessor.Site.objects.filter(name="late")
        h.advance(1.0)  # events.backoff.initial
        h.run_until_idle()
        assert kinds(h.calls_of(SiteEvents)) == ["error", "success"]
        assert h.accessor.Site.objects.filter(name="late")


def test_a_pull_step_runs_every_interval_of_the_fake_clock() -> None:
    with Harness([PullSites], models=MODELS) as h:
        h.run_once()
        h.run_once()
        assert kinds(h.calls_of(PullSites, "pull_records")) == ["success"]
        h.advance(9.5)
        h.run_until_idle()
        assert len(h.calls_of(PullSites)) == 1
        h.advance(0.5)
        h.run_once()
        assert len(h.calls_of(PullSites)) == 2


# -- plugins, models, config, life cycle -----------------------------------------------------


def test_hooks_given_as_an_object_run_at_startup_and_shutdown() -> None:
    with Harness([Lifecycle(), SyncSite], models=MODELS) as h:
        assert LIFECYCLE == ["startup"]
        h.run_until_idle()
        assert [c.kind for c in h.calls_of(SyncSite)] == ["success"]
    assert LIFECYCLE == ["startup", "shutdown"]
    with Harness([Lifecycle()], models=MODELS, startup=False) as h:
        assert not h.accessor.Site.objects.all()
    assert LIFECYCLE == ["startup", "shutdown"]


def test_installed_plugins_run_by_name_and_no_others(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-good")
    with Harness("xrt-good") as h:  # one name, or a list of them
        targets = {p.target for p in h.runtime.plugins.table if p.group is not None}
        assert "xrt_good.steps:SyncSite" in targets
        assert "xrt_good.pull:PullSites" in targets
    with Harness(["xrt_good.steps:SyncSite"], models=MODELS) as h:  # one entry point
        assert [p.target for p in h.runtime.plugins.table if p.kind != "hooks"] == [
            "xrt_good.steps:SyncSite"
        ]
    with Harness([SyncSite], models=MODELS) as h:
        assert [p.target for p in h.runtime.plugins.table if p.kind != "hooks"] == [
            f"{__name__}:SyncSite"
        ]


def test_a_name_that_matches_no_installed_plugin_is_an_error() -> None:
    with pytest.raises(PluginError, match="no installed plugin matches 'xrt-nowhere'"):
        Harness(["xrt-nowhere"]).start()


def test_a_class_of_no_plugin_kind_is_an_error() -> None:
    class NotAStep:
        pass

    with pytest.raises(PluginError, match=r"NotAStep.* subclasses none of SyncStep"):
        Harness([NotAStep], models=MODELS).start()


def test_a_broken_given_plugin_is_named_with_its_file() -> None:
    class SyncNowhere(SyncStep):
        observes = "Nowhere"

    class Typo:
        @hookimpl
        def xos_runtime_modles(self) -> None: ...

    with pytest.raises(PluginError) as raised:
        Harness([SyncNowhere], models=MODELS).start()
    assert str(raised.value).startswith(f"plugin file {__file__} (")
    assert "SyncNowhere) observes unknown model 'Nowhere'" in str(raised.value)
    with pytest.raises(PluginError) as raised:
        Harness([Typo()], models=MODELS).start()
    assert str(raised.value) == (
        f"plugin file {__file__} (Typo) implements unknown hook 'xos_runtime_modles' "
        "(did you mean 'xos_runtime_models'?)"
    )


def test_models_from_a_folder_and_the_temporary_store(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "site.xproto").write_text(MODELS)
    with Harness([SyncSite], models=folder) as h:
        store = h.path
        assert h.store_url == f"sqlite:///{store / 'store.db'}"
        assert (store / "store.db").exists()
        h.accessor.Site.objects.create(name="x")
        h.run_until_idle()
        assert len(h.calls) == 1
    assert not store.exists()
    with Harness([SyncSite], models=[str(folder / "site.xproto")]) as h:
        assert h.accessor.Site.objects.count() == 0
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Harness([SyncSite], models=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"site\.xprot$"):
        Harness([SyncSite], models=str(folder / "site.xprot"))


def test_config_keys_override_the_defaults() -> None:
    FAILING.add("bad")
    config = {"sync": {"backoff": {"initial": 5, "factor": 3}}}
    with Harness([SyncSite], models=MODELS, config=config) as h:
        bad = h.accessor.Site.objects.create(name="bad")
        h.run_until_idle()
        assert h.retry_in(bad) == 5.0
        h.advance(5)
        h.run_until_idle()
        assert h.retry_in(bad) == 15.0
    with pytest.raises(ValueError, match=r"Harness\(plugins=\.\.\.\)"):
        Harness([SyncSite], models=MODELS, config={"plugins": {"enabled": ["x"]}}).start()


def test_a_fake_clock_only_moves_forward() -> None:
    clock = FakeClock(100.0)
    assert clock() == clock.now == 100.0
    assert clock.advance(2.5) == 102.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    with Harness([SyncSite], models=MODELS, clock=clock) as h:
        site = h.accessor.Site.objects.create(name="t")
        assert site.created == pytest.approx(102.5)
        assert h.now == 102.5


def test_a_harness_not_started_says_so() -> None:
    h = Harness([SyncSite], models=MODELS)
    with pytest.raises(RuntimeError, match="not started"):
        h.accessor  # noqa: B018
    assert os.path.isdir(h.start().path)
    h.close()
    h.close()
