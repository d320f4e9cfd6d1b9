"""An empty `models_dir` when no plugin contributes models: one line, exit 2.

Before, the store's remembered models were used silently.
"""

from __future__ import annotations

from .conftest import Project, config_text, run_process


def _seeded(project: Project) -> None:
    proc = run_process("objects", "create", "Site", "name=s1", "-C", project.config)
    assert proc.returncode == 0, proc.stderr


def test_empty_folder(project: Project) -> None:
    _seeded(project)  # the store now remembers Site, User, ...
    project.xproto.unlink()
    for command, code in ((["status"], 2), (["objects", "list", "Site"], 2), (["check"], 1)):
        proc = run_process(*command, "-C", project.config)
        assert proc.returncode == code, (command, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"{project.config}: models_dir: {project.models} holds no *.xproto" in lines[0]
        assert "s1" not in proc.stdout


def test_xproto_files_without_a_model(project: Project) -> None:
    _seeded(project)
    project.write_xproto('option app_label = "empty";\n')
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    assert "models_dir" in proc.stderr and "no plugin contributes models" in proc.stderr


def test_without_models_dir_the_store_remembers(project: Project) -> None:
    """No `models_dir` at all: the store's own models, as before."""
    _seeded(project)
    project.write_config(config_text().replace("models_dir: models\n", ""))
    proc = run_process("objects", "list", "Site", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
    assert "s1" in proc.stdout
