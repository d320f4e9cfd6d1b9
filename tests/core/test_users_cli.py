"""`xos-runtime core user add` and `core token create`; the failure limit's clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli.conftest import REPO_ROOT

from xos_runtime.core import FailureLimit, Users
from xos_runtime.store import open_store

from .conftest import Project


def _process(
    project: Project, *argv: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("XOS_CONFIG_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "xos_runtime", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project.root,
    )


def test_user_add_creates_the_store_and_hashes_the_password(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    assert not project.store.exists()
    # -C after the command group, and the password as one line of standard input
    proc = _process(
        project, "core", "-C", "config.yaml", "user", "add", "--synchronizer",
        "--password-stdin", "vsg", stdin="s3cret pass\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "vsg" in proc.stdout and "s3cret" not in proc.stdout + proc.stderr
    assert project.store.exists()
    assert b"s3cret pass" not in project.store.read_bytes()
    acc = open_store(project.url)
    try:
        users = Users(acc.store)
        user = users.check_password("vsg", "s3cret pass")
        assert user is not None and user.synchronizer
        assert users.check_password("vsg", "s3cret") is None
        assert users.check_password("nobody", "s3cret pass") is None
    finally:
        acc.close()


def test_token_create_prints_a_token_once_and_keeps_its_digest(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    code, _ = project.cli("core", "user", "add", "alice", "--password-stdin", stdin="pw\n")
    assert code == 0
    token = project.token("alice")
    assert token.startswith("xrt_") and token != project.token("alice")
    assert token.encode() not in project.store.read_bytes()
    acc = open_store(project.url)
    try:
        user = Users(acc.store).check_token(token)
        assert user is not None and user.name == "alice" and not user.synchronizer
        assert Users(acc.store).check_token(token + "x") is None
    finally:
        acc.close()


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (("core", "user", "add", "alice", "--password-stdin"), "\n", "password is empty"),
        (("core", "user", "add", "al:ice", "--password-stdin"), "pw\n", "no ':'"),
        (("core", "token", "create", "nobody"), "", "no user named 'nobody'"),
    ],
)
def test_refusals_are_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    stdin: str,
    says: str,
) -> None:
    project = Project(tmp_path / "proj")
    capsys.readouterr()
    code, _ = project.cli(*argv, stdin=stdin)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "WARNING" not in line]
    assert len(lines) == 1 and says in lines[0], err


def test_no_password_on_the_command_line(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    proc = _process(project, "core", "user", "add", "-C", "config.yaml", "alice", "--password", "x")
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr


def test_the_failure_limit_forgets_after_its_window() -> None:
    now = [1000.0]
    limit = FailureLimit(limit=5, window=60.0, clock=lambda: now[0])
    for _ in range(4):
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") is None
    limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == pytest.approx(60.0)
    assert limit.retry_after("10.0.0.2") is None  # per client
    now[0] += 30
    assert limit.retry_after("10.0.0.1") == pytest.approx(30.0)
    now[0] += 30.001
    assert limit.retry_after("10.0.0.1") is None


def test_a_new_password_counts_within_the_row_ttl(tmp_path: Path) -> None:
    """The core trusts a user's row for `ROW_TTL` seconds (requests every few ms need no
    read each): a password changed by another process counts once that time has passed."""
    from xos_runtime.core.users import ROW_TTL

    now = [1000.0]
    accessor = open_store(f"sqlite:///{tmp_path}/users.db", models_optional=True)
    try:
        serving = Users(accessor.store, clock=lambda: now[0])
        other = Users(accessor.store)  # `core user add` in another process
        other.add("vsg", "old-secret", "synchronizer")
        assert serving.check_password("vsg", "old-secret") is not None
        assert serving.known_at_once("vsg", "old-secret")
        other.add("vsg", "new-secret", "synchronizer")
        now[0] += ROW_TTL / 2
        assert serving.check_password("vsg", "old-secret") is not None  # not read again yet
        now[0] += ROW_TTL
        assert not serving.known_at_once("vsg", "old-secret")
        assert serving.check_password("vsg", "old-secret") is None
        assert serving.check_password("vsg", "new-secret") is not None
    finally:
        accessor.close()
