"""`check` fails on a plugin class without its handler, and names the likely typo."""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import REPO_ROOT, Project, config_text, run_process

TYPO = """
from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_recrod(self, obj):
        pass
"""

NO_HANDLERS = """
from xos_runtime import ModelPolicy, PullStep


class SitePolicy(ModelPolicy):
    model_name = "Site"

    def after_policy_save(self, obj):
        pass


class PullSites(PullStep):
    def pull_record(self):
        pass
"""

# A compatibility layer's base class: it defines the handler, so its subclasses have one.
COMPAT_BASE = """
from xos_runtime import SyncStep


class LegacySyncStep(SyncStep):
    def sync_record(self, obj):
        self.legacy_sync(obj)

    def legacy_sync(self, obj):
        pass
"""

INHERITS = """
from compat_base import LegacySyncStep  # imported: not a plugin of this file, not checked


class SyncUser(LegacySyncStep):
    observes = "User"
"""

FINE = """
from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        pass

    def sync_records_of_site(self, obj):  # a helper: sync_record is there, no typo
        pass
"""


def _steps(project: Project, files: dict[str, str], option: str = "steps_dir") -> Path:
    folder = project.root / "plugins"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    project.write_config(config_text(f"{option}: plugins\n"))
    return folder


def test_a_misspelled_sync_record(project: Project) -> None:
    folder = _steps(project, {"site.py": TYPO})
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 1
    assert "check passed" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("check failed")]
    assert lines == [
        f"check failed: plugin file {folder / 'site.py'} (SyncSite) has no 'sync_record' "
        "method: the SyncStep base class's does nothing (is 'sync_recrod' meant to be it?)",
        f"check failed: plugin file {folder / 'site.py'} (SyncSite) defines 'sync_recrod': "
        "a typo of 'sync_record'?",
    ]


def test_a_policy_and_a_pull_step_without_handlers(project: Project) -> None:
    _steps(project, {"p.py": NO_HANDLERS})
    text = config_text("model_policies_dir: plugins\npull_steps_dir: plugins\n")
    project.write_config(text)
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 1
    assert (
        "(SitePolicy) has no 'handle_create' or 'handle_update' or 'handle_delete' method"
        in proc.stderr
    )
    assert "(PullSites) has no 'pull_records' method" in proc.stderr
    assert "(PullSites) defines 'pull_record': a typo of 'pull_records'?" in proc.stderr


def test_handlers_from_a_compatibility_base_count(project: Project) -> None:
    lib = project.root / "lib"  # the compatibility layer: installed, not a plugin folder
    lib.mkdir()
    (lib / "compat_base.py").write_text(COMPAT_BASE)
    _steps(project, {"user.py": INHERITS, "site.py": FINE})
    env = {"PYTHONPATH": f"{lib}{os.pathsep}{REPO_ROOT}"}
    proc = run_process("check", "-C", project.config, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "check passed" in proc.stdout
    assert "2 sync_step" in proc.stdout


def test_other_commands_still_run(project: Project) -> None:
    _steps(project, {"site.py": TYPO})
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
