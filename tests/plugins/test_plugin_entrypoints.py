"""Discovery of real, pip-installed plugin distributions through their entry points."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from xos_runtime.exceptions import PluginError
from xos_runtime.plugins import DiscoveredPlugins, PluginInfo, discover
from xos_runtime.steps import EventStep, ModelPolicy, PullStep, SyncStep

BROKEN_SYNC = (
    "plugin 'xrt-broken 1.0' entry point xos_runtime.sync_steps:sync_site = "
    "xrt_broken.steps:SyncSite failed to load: ModuleNotFoundError: No module named 'nope'"
)
BROKEN_PULL = (
    "plugin 'xrt-broken 1.0' entry point xos_runtime.pull_steps:pull_broken = "
    "xrt_broken.pull:PullBroken failed to load: AssertionError: pull module refuses to load"
)


def rows(found: DiscoveredPlugins, dist: str) -> set[tuple[str | None, ...]]:
    return {
        (p.kind, p.name, p.target, p.distribution, p.version, p.group)
        for p in found.table
        if p.distribution == dist
    }


def of_dist(found: DiscoveredPlugins, dist: str) -> list[PluginInfo]:
    return [p for p in found.table if p.distribution == dist]


def test_good_distribution_fills_the_table(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-good")

    found = discover()

    assert found.failures == []
    assert rows(found, "xrt-good") == {
        ("hooks", "xrt_good", "xrt_good.hooks", "xrt-good", "1.0", "xos_runtime"),
        (
            "sync_step",
            "sync_site",
            "xrt_good.steps:SyncSite",
            "xrt-good",
            "1.0",
            "xos_runtime.sync_steps",
        ),
        (
            "event_step",
            "site_events",
            "xrt_good.events:SiteEvents",
            "xrt-good",
            "1.0",
            "xos_runtime.event_steps",
        ),
        (
            "pull_step",
            "pull_sites",
            "xrt_good.pull:PullSites",
            "xrt-good",
            "1.0",
            "xos_runtime.pull_steps",
        ),
        (
            "model_policy",
            "site_policy",
            "xrt_good.policies:SitePolicy",
            "xrt-good",
            "1.0",
            "xos_runtime.model_policies",
        ),
    }
    for info in of_dist(found, "xrt-good"):
        assert info.file is not None and Path(info.file).exists()
        assert info.origin.startswith("plugin 'xrt-good 1.0' entry point ")
    [sync_site] = [c for c in found.sync_steps if c.__module__ == "xrt_good.steps"]
    assert issubclass(sync_site, SyncStep) and sync_site.observed_model_names() == ["Site"]
    assert any(issubclass(c, EventStep) and c.__name__ == "SiteEvents" for c in found.event_steps)
    assert any(issubclass(c, PullStep) and c.__name__ == "PullSites" for c in found.pull_steps)
    assert any(
        issubclass(c, ModelPolicy) and c.__name__ == "SitePolicy" for c in found.model_policies
    )


def test_hooks_module_answers_hook_calls(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-good")

    found = discover()

    hooks = found.plugin_manager.get_plugin("xrt_good")
    assert hooks is not None and hooks.__name__ == "xrt_good.hooks"
    # Other plugins may be installed in the environment: look at this one's answers only.
    assert hooks.xos_runtime_models() in found.hook.xos_runtime_models()
    (name, text), path = hooks.xos_runtime_models()
    assert name == "xrt_good/site.xproto" and "message Site (XOSBase)" in text
    assert Path(path).read_text().startswith('option name = "xrt_good";')  # package data
    assert {"User": [["Site", "site", "users"]]} in found.hook.xos_runtime_model_deps()
    assert found.hook.xos_runtime_startup(runtime=object()) == []


def test_broken_distribution_stops_discovery_naming_each_failure(
    use_dists: Callable[..., None],
) -> None:
    use_dists("xrt-good", "xrt-broken")

    with pytest.raises(PluginError) as excinfo:
        discover()

    assert str(excinfo.value).splitlines() == [BROKEN_SYNC, BROKEN_PULL]


def test_skip_broken_warns_and_loads_the_rest(
    use_dists: Callable[..., None], log_messages: list[tuple[str, str]]
) -> None:
    use_dists("xrt-good", "xrt-broken")

    found = discover(skip_broken=True)

    assert found.failures == [BROKEN_SYNC, BROKEN_PULL]
    warnings = [m for level, m in log_messages if level == "WARNING"]
    assert any(m.startswith(BROKEN_SYNC) for m in warnings)
    assert any(m.startswith(BROKEN_PULL) for m in warnings)
    assert of_dist(found, "xrt-broken") == []
    assert len(of_dist(found, "xrt-good")) == 5


def test_entry_points_of_the_wrong_kind_are_refused(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-wrongkind")

    with pytest.raises(PluginError) as excinfo:
        discover()

    wrong_hooks, sync_thing, helper = (
        f"plugin 'xrt-wrongkind 2.3' entry point {ep} = xrt_wrongkind.things:{attr}"
        for ep, attr in [
            ("xos_runtime:wrong_hooks", "SyncThing"),
            ("xos_runtime.sync_steps:sync_thing", "ThingPolicy"),
            ("xos_runtime.sync_steps:helper", "helper"),
        ]
    )
    assert sorted(str(excinfo.value).splitlines()) == sorted(
        [
            f"{wrong_hooks} is a SyncStep subclass, not a module of hook implementations "
            "(declare it in the *.sync_steps group)",
            f"{sync_thing} is not a SyncStep subclass: it is a ModelPolicy subclass "
            "(declare it in the *.model_policies group)",
            f"{helper} is not a SyncStep subclass: it is a function, not a class",
        ]
    )


def test_unknown_models_fail_validation(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-good", "xrt-badmodel")
    found = discover()  # the models are not known yet: discovery itself succeeds
    assert len(of_dist(found, "xrt-badmodel")) == 2

    with pytest.raises(PluginError) as excinfo:
        found.validate({"Site", "User"})

    origin = "plugin 'xrt-badmodel 0.1' entry point"
    assert str(excinfo.value).splitlines() == [
        f"{origin} xos_runtime.sync_steps:sync_ghost = xrt_badmodel.steps:SyncGhost observes "
        "unknown model 'Ghost' (known models: Site, User)",
        f"{origin} xos_runtime.model_policies:phantom_policy = xrt_badmodel.steps:PhantomPolicy "
        "polices unknown model 'Sitee' (did you mean 'Site'?)",
    ]


def test_unknown_models_with_skip_broken_drop_only_those_plugins(
    use_dists: Callable[..., None],
) -> None:
    use_dists("xrt-good", "xrt-badmodel")
    found = discover(skip_broken=True)

    problems = found.validate({"Site", "User"})

    assert len(problems) == 2 and found.failures == problems
    assert of_dist(found, "xrt-badmodel") == []
    assert len(of_dist(found, "xrt-good")) == 5


@pytest.mark.parametrize(
    "disabled",
    [
        ["sync_site"],  # entry-point name
        ["xrt_broken.steps:SyncSite"],  # module:Class
        ["SyncSite"],  # class name
    ],
)
def test_disabled_entry_point_is_not_imported(
    use_dists: Callable[..., None], disabled: list[str]
) -> None:
    use_dists("xrt-good", "xrt-broken")

    found = discover(disabled=[*disabled, "pull_broken"])

    assert found.failures == []
    assert of_dist(found, "xrt-broken") == []
    assert any("xrt_broken.steps:SyncSite" in origin for origin in found.disabled)
    if disabled != ["xrt_broken.steps:SyncSite"]:  # the name matches xrt-good's step too
        assert "sync_site" not in {p.name for p in found.table}


def test_disabled_distribution_turns_off_all_its_plugins(
    use_dists: Callable[..., None], log_messages: list[tuple[str, str]]
) -> None:
    use_dists("xrt-good", "xrt-broken")

    found = discover(disabled=["XRT_Broken", "no-such-plugin"])

    assert found.failures == []
    assert len(found.disabled) == 2
    assert len(of_dist(found, "xrt-good")) == 5
    assert ("WARNING", "plugins.disabled: 'no-such-plugin' matches no plugin") in log_messages


def test_discovery_follows_sys_path_changes(use_dists: Callable[..., None]) -> None:
    assert of_dist(discover(), "xrt-good") == []
    use_dists("xrt-good")
    assert len(of_dist(discover(), "xrt-good")) == 5


def test_groups_prefix_selects_other_groups(use_dists: Callable[..., None]) -> None:
    use_dists("xrt-good")

    found = discover(groups_prefix="xrt_other")

    assert of_dist(found, "xrt-good") == []


def test_enabled_names_the_installed_plugins_a_config_runs(
    use_dists: Callable[..., None], log_messages: list[tuple[str, str]], tmp_path: Path
) -> None:
    """`plugins.enabled`: the installed plugins not named are not even imported (a broken
    one stops nothing); built-ins and directory plugins run whatever it says."""
    use_dists("xrt-good", "xrt-broken")
    steps = tmp_path / "steps"
    steps.mkdir()
    (steps / "sync_local.py").write_text(
        "from xos_runtime import SyncStep\n\n\nclass SyncLocal(SyncStep):\n"
        "    observes = 'Site'\n\n    def sync_record(self, obj):\n        pass\n"
    )

    found = discover(enabled=["xrt-good", "nothing-installed"], steps_dir=str(steps))

    assert found.failures == []  # xrt-broken was never imported
    assert of_dist(found, "xrt-broken") == []
    assert len(of_dist(found, "xrt-good")) == 5
    assert "SyncLocal" in {p.name for p in found.table}
    assert any("xrt_broken" in origin for origin in found.disabled)
    assert (
        "WARNING",
        "plugins.enabled: 'nothing-installed' matches no installed plugin",
    ) in log_messages
    assert of_dist(discover(enabled=[]), "xrt-good") == []  # an empty list: none installed
