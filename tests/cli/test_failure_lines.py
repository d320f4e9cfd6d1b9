"""Failure lines at INFO name the exception type where its text alone is cryptic."""

from __future__ import annotations

import textwrap
from subprocess import CompletedProcess

from .conftest import Project, config_text, run_process

PULL = """
from xos_runtime import PullStep


class PullSites(PullStep):
    def pull_records(self):
        record = {}
        return record["name"]
"""

SYNC = """
from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        return {}["name"]
"""


def run_once_with(project: Project, code: dict[str, tuple[str, str]]) -> CompletedProcess[str]:
    """`run --once` over Site 1 with plugin folders `{option: (folder, source)}`."""
    options = ""
    for option, (folder, text) in code.items():
        (project.root / folder).mkdir()
        (project.root / folder / "code.py").write_text(textwrap.dedent(text))
        options += f"{option}: {folder}\n"
    project.write_config(config_text(options))
    assert run_process("objects", "create", "Site", "name=s1", "-C", project.config).returncode == 0
    return run_process("run", "--once", "-C", project.config)


def test_key_errors_carry_their_type(project: Project) -> None:
    proc = run_once_with(project, {"pull_steps_dir": ("pull", PULL), "steps_dir": ("sync", SYNC)})
    assert proc.returncode == 1, proc.stderr  # Site 1 is left in error
    assert "pull_records failed: KeyError: 'name'" in proc.stderr
    assert "sync_record failed: KeyError: 'name'" in proc.stderr
    assert "does not load" not in proc.stderr
    shown = run_process("objects", "show", "Site", "1", "--json", "-C", project.config)
    assert '"backend_status": "KeyError: \'name\'"' in shown.stdout


POLICY = """
from xos_runtime import Policy


class SitePolicy(Policy):
    model_name = "Site"

    def handle_create(self, obj):
        raise ConnectionError("backend refused")
"""

SYNC_DOWN = """
from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        raise RuntimeError("backend down")
"""


def test_every_failure_line_names_the_exception_type_and_the_status_keeps_the_message(
    project: Project,
) -> None:
    """The log line says what was raised (`RuntimeError: backend down`); the stored status
    keeps the message the step raised, as the contract's status field says it."""
    code = {"model_policies_dir": ("policies", POLICY), "steps_dir": ("sync", SYNC_DOWN)}
    proc = run_once_with(project, code)
    assert "sync_record failed: RuntimeError: backend down" in proc.stderr, proc.stderr
    assert "policy handle_create failed: ConnectionError: backend refused" in proc.stderr
    shown = run_process("objects", "show", "Site", "1", "--json", "-C", project.config)
    assert '"backend_status": "backend down"' in shown.stdout
    assert '"policy_status": "backend refused"' in shown.stdout
