"""Progress during a long pass: log lines in a running synchronizer, a bar on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import xos_runtime

from .conftest import REPO_ROOT, Project, config_text, run_process

SLOW = """
import time

from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        time.sleep(0.01)  # workload: 30 objects on one worker make a pass of 0.3 s or more
"""

LINE = re.compile(r"sync: (\d+) done, (\d+) pending, [\d,]+/s")


def _slow_project(project: Project, progress: str = "0.05") -> None:
    (project.root / "steps").mkdir()
    (project.root / "steps" / "slow.py").write_text(SLOW)
    project.write_config(
        config_text(f"steps_dir: steps\nsync: {{workers: 1}}\nlogging: {{progress: {progress}}}\n")
    )
    accessor = xos_runtime.connect(project.config)
    try:
        accessor.Site.objects.bulk_create([{"name": f"s{i}"} for i in range(30)])
    finally:
        accessor.close()


def test_progress_lines_during_a_long_pass(project: Project) -> None:
    _slow_project(project)
    proc = run_process("run", "--until-idle", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
    lines = [m for line in proc.stderr.splitlines() if (m := LINE.search(line))]
    assert lines, proc.stderr
    for m in lines:
        assert int(m[1]) + int(m[2]) == 30
    assert re.search(r"sync: 30 done in [\d.]+ s", proc.stderr), proc.stderr
    assert "\x1b[K" not in proc.stderr  # not a terminal: no bar


def test_progress_off(project: Project) -> None:
    _slow_project(project, progress="0")
    proc = run_process("run", "--until-idle", "-C", project.config)
    assert proc.returncode == 0, proc.stderr
    assert not LINE.search(proc.stderr)


def _on_a_terminal(*args: str) -> str:
    """Run the CLI with its standard error on a pseudo-terminal; what it wrote there."""
    main, tty = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "100"}
    env.pop("XOS_CONFIG_FILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xos_runtime", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=tty,
        env=env,
    )
    os.close(tty)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_a_bar_on_a_terminal(project: Project) -> None:
    _slow_project(project)
    out = _on_a_terminal("run", "--until-idle", "-C", str(project.config))
    bars = re.findall(r"\r\x1b\[Ksync +\[[#.]+\] (\d+)/30 ", out)
    assert bars, out
    assert not LINE.search(out)  # the bar replaces the progress lines
    # the summary is a whole line of its own, after the bar was taken off
    assert re.search(r"\r\x1b\[K[^\r]*\d+ pass\(es\): 30 call\(s\)", out), out


def test_no_bar_when_asked(project: Project) -> None:
    _slow_project(project)
    out = _on_a_terminal("run", "--until-idle", "--no-progress", "-C", str(project.config))
    assert "\x1b[K" not in out
    assert LINE.search(out)
