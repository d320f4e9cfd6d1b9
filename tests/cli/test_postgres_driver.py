"""A `postgresql://` store without the driver: one line that says what to install, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, Project, config_text, run_process

#: Imported at interpreter start (PYTHONPATH): psycopg cannot be imported, as if not installed.
BLOCKER = """
import sys

class _NoPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("psycopg", "psycopg2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoPsycopg())
"""


@pytest.fixture
def no_driver(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "blocker"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    return {"PYTHONPATH": f"{folder}:{REPO_ROOT}"}


@pytest.fixture
def pg_project(project: Project) -> Project:
    endpoint = "postgresql://xrt:secret@127.0.0.1:5432/xrt_nodriver"
    project.write_config(config_text().replace("sqlite:///store.db", endpoint))
    return project


@pytest.mark.parametrize("command", [["status"], ["objects", "list", "Site"]], ids=" ".join)
def test_names_the_extra(
    pg_project: Project, no_driver: dict[str, str], command: list[str]
) -> None:
    proc = run_process(*command, "-C", pg_project.config, env=no_driver)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'xos-runtime[postgres]'" in lines[0]
    assert "accessor.endpoint" in lines[0]
    assert "secret" not in lines[0]


def test_check_fails_with_the_same_line(pg_project: Project, no_driver: dict[str, str]) -> None:
    proc = run_process("check", "-C", pg_project.config, env=no_driver)
    assert proc.returncode == 1
    assert "pip install 'xos-runtime[postgres]'" in proc.stderr


def test_the_blocker_blocks(no_driver: dict[str, str], tmp_path: Path) -> None:
    """The test's premise: in those processes psycopg is missing (it is installed here)."""
    code = "import psycopg"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=no_driver, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr
