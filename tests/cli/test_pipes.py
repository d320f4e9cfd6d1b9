"""Output into a closed pipe (`xos-runtime status | head -1`): exit 0 and nothing on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import xos_runtime

from .conftest import REPO_ROOT, Project


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("XOS_CONFIG_FILE", None)
    return env


def _seed(project: Project, n: int) -> None:
    acc = xos_runtime.connect(os.fspath(project.config))
    try:
        for i in range(n):
            acc.Site.objects.create(name=f"site-{i:05d}")
    finally:
        acc.close()


@pytest.mark.parametrize(
    "command", [["status"], ["objects", "list", "Site"], ["graph"], ["plan"]], ids=" ".join
)
def test_a_reader_that_is_gone_is_no_error(project: Project, command: list[str]) -> None:
    """The pipe's read end is closed before the command writes a byte: every write fails."""
    _seed(project, 3)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "xos_runtime", *command, "-C", os.fspath(project.config)],
            env=_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_objects_list_into_head(project: Project, tmp_path: Path) -> None:
    """A shell pipeline, as a user types it: more output than a pipe holds, `head` stops early."""
    _seed(project, 1500)
    script = (
        f'"{sys.executable}" -m xos_runtime objects list Site -C "{project.config}" | head -1; '
        'echo "exit=${PIPESTATUS[0]}"'
    )
    proc = subprocess.run(
        ["bash", "-c", script], env=_env(), capture_output=True, text=True, timeout=60
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ID")
    assert lines[-1] == "exit=0"
    assert proc.stderr == ""
