"""The hook contract: the specifications, built-in plugins, and refused implementations."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import pluggy
import pytest

from xos_runtime import hookspecs
from xos_runtime.exceptions import PluginError
from xos_runtime.hookspecs import hookimpl
from xos_runtime.plugins import discover, new_plugin_manager

EXPECTED_HOOKS = {
    "xos_runtime_models": [],
    "xos_runtime_model_deps": [],
    "xos_runtime_configure": ["config"],
    "xos_runtime_store_opened": ["accessor"],
    "xos_runtime_engines": ["runtime"],
    "xos_runtime_startup": ["runtime"],
    "xos_runtime_shutdown": ["runtime"],
    "xos_runtime_sync_outcome": ["step", "obj", "outcome"],
    "xos_runtime_policy_outcome": ["policy", "obj", "action", "outcome"],
    "xos_runtime_event_outcome": ["step", "event", "outcome"],
    "xos_runtime_pull_outcome": ["step", "outcome"],
}


def module(name: str, **functions: Any) -> ModuleType:
    mod = ModuleType(name)
    for attr, fn in functions.items():
        setattr(mod, attr, fn)
    return mod


def test_every_hook_is_specified_and_documented() -> None:
    pm = new_plugin_manager()
    specified = {
        name: list(inspect.signature(getattr(hookspecs, name)).parameters)
        for name in vars(hookspecs)
        if name.startswith("xos_runtime_")
    }
    assert specified == EXPECTED_HOOKS
    for name in EXPECTED_HOOKS:
        assert getattr(pm.hook, name).has_spec()
        assert len(inspect.getdoc(getattr(hookspecs, name)) or "") > 100, name
    assert isinstance(hookspecs.hookimpl, pluggy.HookimplMarker)
    assert hookspecs.hookimpl.project_name == "xos_runtime"


def test_builtin_plugins_register_first_and_third_party_runs_first() -> None:
    engines = module(
        "xos_runtime.engines.builtin",
        xos_runtime_engines=hookimpl(lambda runtime: [f"sync engine for {runtime}"]),
    )
    extra = module("extra_engines", xos_runtime_engines=hookimpl(lambda: ["a third-party engine"]))

    found = discover(builtin_plugins=[engines, extra], use_entry_points=False)

    assert [(p.kind, p.name, p.distribution) for p in found.table] == [
        ("hooks", "xos_runtime.engines.builtin", "xos-runtime"),
        ("hooks", "extra_engines", "xos-runtime"),
    ]
    assert found.hook.xos_runtime_engines(runtime="R") == [
        ["a third-party engine"],
        ["sync engine for R"],
    ]
    assert found.hook_plugins == (engines, extra)


def test_disabled_builtin_is_blocked() -> None:
    engines = module("xos_runtime.engines.events", xos_runtime_engines=hookimpl(lambda: ["events"]))

    found = discover(
        builtin_plugins=[engines], disabled=["xos_runtime.engines.events"], use_entry_points=False
    )

    assert found.hook.xos_runtime_engines(runtime=None) == []
    assert found.plugin_manager.is_blocked("xos_runtime.engines.events")


def test_hookimpl_with_unknown_argument_is_refused() -> None:
    bad = module("bad_hooks", xos_runtime_startup=hookimpl(lambda runtime, extra: None))

    with pytest.raises(PluginError) as excinfo:
        discover(builtin_plugins=[bad], use_entry_points=False)

    message = str(excinfo.value)
    assert message.startswith("built-in plugin bad_hooks failed to register: ")
    assert "PluginValidationError" in message and "extra" in message
    assert "\n" not in message


def test_misspelt_hook_is_refused_with_a_suggestion() -> None:
    typo = module("typo_hooks", xos_runtime_modles=hookimpl(lambda: []))
    optional = module(
        "optional_hooks",
        xos_runtime_someday=hookimpl(optionalhook=True)(lambda: []),
    )

    found = discover(builtin_plugins=[typo, optional], skip_broken=True, use_entry_points=False)

    assert found.failures == [
        "built-in plugin typo_hooks implements unknown hook 'xos_runtime_modles' "
        "(did you mean 'xos_runtime_models'?)"
    ]
    assert [p.name for p in found.table] == ["optional_hooks"]
    assert not found.plugin_manager.is_registered(typo)
