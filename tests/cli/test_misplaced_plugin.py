"""A plugin class in the wrong `*_dir` gets a warning naming the right one."""

from __future__ import annotations

from .conftest import Project, config_text, run_process

POLICY = """
from xos_runtime import ModelPolicy, SyncStep


class SitePolicy(ModelPolicy):
    model_name = "Site"

    def handle_create(self, obj):
        pass


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        pass
"""


def test_a_policy_in_steps_dir(project: Project) -> None:
    (project.root / "steps").mkdir()
    path = project.root / "steps" / "site.py"
    path.write_text(POLICY)
    project.write_config(config_text("steps_dir: steps\n"))
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, proc.stderr
    assert (
        f"{path}: SitePolicy is a ModelPolicy, which steps_dir does not load; "
        "put it in model_policies_dir" in warnings[0]
    )
    assert "1 sync_step" in proc.stdout and "model_policy" not in proc.stdout


def test_one_directory_for_both_kinds_is_no_mistake(project: Project) -> None:
    """XOS deployments sometimes point two options at one directory."""
    (project.root / "steps").mkdir()
    (project.root / "steps" / "site.py").write_text(POLICY)
    project.write_config(config_text("steps_dir: steps\nmodel_policies_dir: steps\n"))
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
    assert "does not load" not in proc.stderr
    assert "1 model_policy, 1 sync_step" in proc.stdout
