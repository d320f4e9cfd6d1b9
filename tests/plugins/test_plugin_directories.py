"""Plugins loaded from the `*_dir` directories."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from xos_runtime.exceptions import PluginError
from xos_runtime.plugins import discover, package_name_for, plugin_files
from xos_runtime.steps import ModelPolicy, SyncStep


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


SYNC_USER_A = """
    from xos_runtime.steps import SyncStep

    class SyncUser(SyncStep):
        observes = "User"
        origin = "a"
"""
SYNC_USER_B = """
    from xos_runtime import steps

    class SyncUser(steps.SyncStep):
        observes = ["User", "Site"]
        origin = "b"
"""


def test_same_file_name_in_two_directories_gives_two_modules(tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "steps", "sync_user.py", SYNC_USER_A)
    b = write(tmp_path / "b" / "steps", "sync_user.py", SYNC_USER_B)

    found = discover(steps_dir=str(a.parent), pull_steps_dir=None, use_entry_points=False)
    found_b = discover(steps_dir=str(b.parent), use_entry_points=False)

    [step_a] = found.sync_steps
    [step_b] = found_b.sync_steps
    assert (step_a.origin, step_b.origin) == ("a", "b")  # type: ignore[attr-defined]
    assert step_a.__module__ != step_b.__module__
    assert step_a.__module__ == f"{package_name_for(str(a.parent))}.sync_user"
    assert sys.modules[step_a.__module__].__file__ == str(a)
    [info] = found.table
    assert (info.kind, info.name, info.file, info.distribution, info.group) == (
        "sync_step",
        "SyncUser",
        str(a),
        None,
        None,
    )
    assert info.target == f"{step_a.__module__}:SyncUser"
    assert info.origin == f"plugin file {a} (SyncUser)"


def test_two_directories_in_one_discovery(tmp_path: Path) -> None:
    write(tmp_path / "steps", "sync_user.py", SYNC_USER_A)
    write(
        tmp_path / "policies",
        "sync_user.py",
        """
        from xos_runtime.steps import Policy

        class UserPolicy(Policy):
            model_name = "User"
        """,
    )

    found = discover(
        steps_dir=str(tmp_path / "steps"),
        model_policies_dir=str(tmp_path / "policies"),
        use_entry_points=False,
    )

    assert [c.__name__ for c in found.sync_steps] == ["SyncUser"]
    assert [c.__name__ for c in found.model_policies] == ["UserPolicy"]
    assert found.sync_steps[0].__module__ != found.model_policies[0].__module__


def test_steps_are_found_by_mro_and_only_where_defined(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    write(
        steps,
        "base.py",
        """
        from xos_runtime.steps import SyncStep

        class _ServiceStep(SyncStep):
            '''A shared base: private, so not a step itself.'''

        class SyncService(_ServiceStep):
            observes = "Service"
        """,
    )
    write(
        steps,
        "sync_instance.py",
        """
        from xos_runtime.steps import SyncStep, ModelPolicy
        from .base import SyncService, _ServiceStep  # imported: not steps of this module

        class SyncInstance(_ServiceStep):   # grandchild of SyncStep
            observes = "ServiceInstance"

        class SyncTenant(SyncService):
            observes = "Tenant"

        class InstancePolicy(ModelPolicy):  # another kind: not a sync step
            model_name = "ServiceInstance"

        class NotAStep:
            observes = "Nothing"
        """,
    )
    write(steps, "test_sync_instance.py", "raise RuntimeError('test files are skipped')\n")
    write(steps, "__init__.py", "raise RuntimeError('__init__ is not run')\n")
    write(steps, "notes.txt", "not python\n")

    found = discover(steps_dir=str(steps), use_entry_points=False)

    assert sorted(c.__name__ for c in found.sync_steps) == [
        "SyncInstance",
        "SyncService",
        "SyncTenant",
    ]
    assert all(issubclass(c, SyncStep) for c in found.sync_steps)
    assert found.model_policies == ()
    assert [Path(p).name for p in plugin_files(str(steps))] == ["base.py", "sync_instance.py"]


def test_sibling_modules_import_relatively_and_absolutely(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    write(steps, "helpers.py", "PREFIX = 'x-'\n")
    write(
        steps,
        "sync_site.py",
        """
        import helpers as absolute_helpers  # XOS style: the directory is on sys.path
        from . import helpers
        from xos_runtime.steps import SyncStep

        class SyncSite(SyncStep):
            observes = "Site"
            prefix = helpers.PREFIX + absolute_helpers.PREFIX
        """,
    )

    found = discover(steps_dir=str(steps), use_entry_points=False)

    assert [c.prefix for c in found.sync_steps] == ["x-x-"]  # type: ignore[attr-defined]
    assert str(steps) not in sys.path
    sys.modules.pop("helpers", None)


def test_broken_file_is_named_with_its_cause(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    bad = write(steps, "sync_bad.py", "x = 1 / 0\n")
    write(steps, "sync_user.py", SYNC_USER_A)

    with pytest.raises(PluginError) as excinfo:
        discover(steps_dir=str(steps), use_entry_points=False)
    assert str(excinfo.value) == (
        f"plugin file {bad} (steps_dir) failed to load: ZeroDivisionError: division by zero"
    )

    found = discover(steps_dir=str(steps), use_entry_points=False, skip_broken=True)
    assert [c.__name__ for c in found.sync_steps] == ["SyncUser"]
    assert found.failures == [str(excinfo.value)]
    assert f"{package_name_for(str(steps))}.sync_bad" not in sys.modules


def test_syntax_error_and_missing_directory(tmp_path: Path) -> None:
    bad = write(tmp_path / "pull", "pull_bad.py", "def broken(:\n")

    with pytest.raises(PluginError) as excinfo:
        discover(
            pull_steps_dir=str(tmp_path / "pull"),
            event_steps_dir=str(tmp_path / "missing"),
            use_entry_points=False,
        )

    second, first = str(excinfo.value).splitlines()  # directories go sync, event, pull, policy
    assert first.startswith(f"plugin file {bad} (pull_steps_dir) failed to load: SyntaxError: ")
    assert second == f"plugin directory {tmp_path / 'missing'} (event_steps_dir) is not a directory"


def test_disabled_file_is_not_imported_and_disabled_class_is_left_out(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    write(steps, "sync_bad.py", "x = 1 / 0\n")
    write(steps, "sync_user.py", SYNC_USER_A)
    write(
        steps,
        "sync_site.py",
        """
        from xos_runtime.steps import SyncStep

        class SyncSite(SyncStep):
            observes = "Site"
        """,
    )

    found = discover(
        steps_dir=str(steps), disabled=["sync_bad.py", "SyncUser"], use_entry_points=False
    )

    assert [c.__name__ for c in found.sync_steps] == ["SyncSite"]
    assert found.disabled == [
        f"plugin file {steps / 'sync_bad.py'}",
        f"plugin file {steps / 'sync_user.py'} (SyncUser)",
    ]


def test_one_directory_for_two_kinds_imports_each_file_once(tmp_path: Path) -> None:
    both = tmp_path / "both"
    write(
        both,
        "site.py",
        """
        from xos_runtime.steps import SyncStep, ModelPolicy
        import itertools
        LOADS = []
        LOADS.append(1)

        class SyncSite(SyncStep):
            observes = "Site"

        class SitePolicy(ModelPolicy):
            model_name = "Site"
        """,
    )

    found = discover(steps_dir=str(both), model_policies_dir=str(both), use_entry_points=False)

    [step], [policy] = found.sync_steps, found.model_policies
    assert issubclass(policy, ModelPolicy) and step.__module__ == policy.__module__
    assert sys.modules[step.__module__].LOADS == [1]


def test_validation_of_directory_plugins(tmp_path: Path) -> None:
    events = write(
        tmp_path / "events",
        "events.py",
        """
        from xos_runtime.steps import EventStep

        class Neither(EventStep):
            pass

        class Both(EventStep):
            topics = ["a"]
            pattern = "b.*"

        class Fine(EventStep):
            pattern = "xos\\\\..*"
        """,
    )
    found = discover(event_steps_dir=str(events.parent), use_entry_points=False)

    with pytest.raises(PluginError) as excinfo:
        found.validate(["Site"])

    assert sorted(str(excinfo.value).splitlines()) == [
        f"plugin file {events} (Both) sets both topics and pattern; set exactly one",
        f"plugin file {events} (Neither) sets neither topics nor pattern; set exactly one",
    ]


def test_second_discovery_reads_edited_files(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    write(steps, "names.py", "MODEL = 'Site'\n")
    sync = """
        from xos_runtime.steps import SyncStep
        from .names import MODEL

        class SyncIt(SyncStep):
            observes = MODEL
    """
    write(steps, "sync_it.py", sync)
    first = discover(steps_dir=str(steps), use_entry_points=False)
    write(steps, "names.py", "MODEL = 'User'  # edited\n")

    second = discover(steps_dir=str(steps), use_entry_points=False)

    assert first.sync_steps[0].observed_model_names() == ["Site"]
    assert second.sync_steps[0].observed_model_names() == ["User"]
