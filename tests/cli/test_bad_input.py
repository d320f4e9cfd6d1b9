"""Bad input gets one line naming the file, key or model, and exit 2 (`check`: 1)."""

from __future__ import annotations

import os

from .conftest import Project, config_text, run_process


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_config_that_is_not_utf8(project: Project) -> None:
    project.config.write_bytes(config_text().encode() + b"# caf\xe9\n")
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert str(project.config.name) in line
    assert "not UTF-8 text (byte 0xe9 at line" in line


def test_xproto_that_is_not_utf8(project: Project) -> None:
    project.xproto.write_bytes(b"// ok\nmessage Caf\xe9 (XOSBase) {\n}\n")
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"{project.xproto}:2:12: not UTF-8 text (byte 0xe9)" in line


def test_check_names_an_xproto_that_is_not_utf8(project: Project) -> None:
    project.xproto.write_bytes(b"message Caf\xe9 (XOSBase) {\n}\n")
    proc = run_process("check", "-C", project.config)
    assert proc.returncode == 1
    assert f"{project.xproto}:1:12: not UTF-8 text" in _one_error_line(proc.stderr)


def test_password_file_that_is_not_utf8(project: Project) -> None:
    (project.root / "pw").write_bytes(b"s3cr\xe9t\n")
    text = config_text().replace(
        "{endpoint: sqlite:///store.db}", '{endpoint: sqlite:///store.db, password: "@pw"}'
    )
    project.write_config(text)
    proc = run_process("status", "-C", project.config)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "accessor.password" in line and "not UTF-8 text" in line


def test_field_value_that_is_not_utf8(project: Project) -> None:
    # a word of the command line whose bytes are not UTF-8, as `name=$'caf\xe9'` in bash
    value = os.fsdecode(b"name=caf\xe9")
    proc = run_process("objects", "create", "Site", value, "-C", project.config)
    assert proc.returncode == 2
    assert "Site.name: the value is not UTF-8 text" in _one_error_line(proc.stderr)
