"""An inheritance chain deeper than 100 levels, or a cycle, is named at once: one line, exit 2."""

from __future__ import annotations

import time

import pytest

from .conftest import Project, run_process


def _chain(levels: int) -> str:
    lines = ["message M0 (XOSBase) { optional string f0 = 1; }"]
    lines += [f"message M{i} (M{i - 1}) {{ optional string f{i} = 1; }}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_hundred_levels_are_fine(project: Project) -> None:
    project.write_xproto(_chain(101))  # M100 is 100 levels below M0
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("levels", [102, 2_000, 10_000])
def test_deeper_is_named(project: Project, levels: int) -> None:
    project.write_xproto(_chain(levels))
    started = time.monotonic()
    proc = run_process("status", "-C", project.config)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert f"{project.xproto}:102: model 'M101' is 101 levels of inheritance below" in line
    assert "at most 100" in line
    # before: every model walked its whole chain again, minutes for 10,000 levels; the
    # bound is loose (a shared 2-core machine), the point is "not minutes"
    assert elapsed < 15


def test_a_cycle_is_named(project: Project) -> None:
    project.write_xproto(
        "message A (C) { optional string a = 1; }\n"
        "message B (A) { optional string b = 1; }\n"
        "message C (B) { optional string c = 1; }\n"
    )
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    assert "inheritance cycle: A -> C -> B -> A" in _one_line(proc.stderr)
