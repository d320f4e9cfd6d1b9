"""How `xos-runtime run` ends when plugin calls hang: real processes, as an operator runs them.

Pull steps written into `pull_steps_dir` hang until a release file appears (or for good); the
`xrt-engine` sync steps hang on `behaviour=hang:<seconds>`. Every wait is on a condition with
a deadline; the bounds on exit times are what the contract promises (timeout or grace period
plus a margin), far below the hangs themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
#: What a process may need beyond a timeout or grace period to log, close and exit.
MARGIN = 8.0
HANG = 120  # seconds a hung call lasts unless released: far beyond every bound below

PULL_STEPS = """\
import atexit, json, os, time

from xos_runtime import PullStep


def _line(step):
    with open(os.environ["XRT_PULL_LOG"], "a") as f:
        f.write(json.dumps({"step": step, "at": time.monotonic()}) + "\\n")


@atexit.register
def _at_exit():
    with open(os.environ["XRT_ATEXIT"], "w") as f:
        f.write("atexit ran\\n")


class HangPull(PullStep):
    interval = 0.1

    def pull_records(self):
        _line("HangPull")
        release, deadline = os.environ["XRT_RELEASE"], time.monotonic() + HANG_SECONDS
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        _line("HangPull returned")


class Ticker(PullStep):
    interval = 0.1

    def pull_records(self):
        _line("Ticker")
""".replace("HANG_SECONDS", str(HANG))


@pytest.fixture
def host(tmp_path: Path, installed_dists: dict[str, Path]) -> Any:
    pulls = tmp_path / "pulls"
    pulls.mkdir()
    (pulls / "hanging.py").write_text(PULL_STEPS)
    files = {
        "pull_log": tmp_path / "pulls.jsonl",
        "sync_log": tmp_path / "calls.jsonl",
        "release": tmp_path / "release",
        "atexit": tmp_path / "atexit-ran",
        "stderr": tmp_path / "stderr.txt",
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed_dists["xrt-engine"]), str(REPO)]),
        "XRT_ENGINE_LOG": str(files["sync_log"]),
        "XRT_PULL_LOG": str(files["pull_log"]),
        "XRT_RELEASE": str(files["release"]),
        "XRT_ATEXIT": str(files["atexit"]),
    }
    config = tmp_path / "config.yaml"

    def configure(sync: dict[str, Any] | None = None, pull: dict[str, Any] | None = None) -> None:
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "exit-test",
                    "accessor": {"endpoint": "sqlite:///store.db"},
                    "pull_steps_dir": "pulls",
                    "sync": {"workers": 2, "poll_interval": 0.5, **(sync or {})},
                    "pull": pull or {},
                    "plugins": {"disabled": ["xos-runtime-demo"]},
                }
            )
        )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xos_runtime", *args, "-C", str(config)],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
            cwd=tmp_path,
        )

    def spawn(*args: str) -> subprocess.Popen[str]:
        # stderr to a file: a pipe nobody reads could fill up and block the process
        with files["stderr"].open("w") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "xos_runtime", "run", "-C", str(config), *args],
                env=env,
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=tmp_path,
            )

    configure()
    made: list[subprocess.Popen[str]] = []

    def started(*args: str) -> subprocess.Popen[str]:
        proc = spawn(*args)
        made.append(proc)
        return proc

    yield {"configure": configure, "cli": cli, "spawn": started, **files}
    files["release"].touch()
    for proc in made:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(what: str, predicate: Callable[[], bool], proc: Any = None, seconds=60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first (exit {proc.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.02)


def calls_of(host: Any, step: str) -> int:
    return sum(1 for entry in lines(host["pull_log"]) if entry["step"] == step)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--once", "--until-idle"])
def test_a_hung_pull_does_not_hold_once_or_until_idle(host, mode) -> None:
    host["configure"](pull={"timeout": 0.5})
    started = time.monotonic()
    out = host["cli"]("run", mode)
    took = time.monotonic() - started
    # a timed-out pull leaves no object in error: the run succeeded
    assert out.returncode == 0, out.stderr
    assert took < 0.5 + MARGIN + 5  # start-up included; the hang lasts HANG seconds
    assert "pull_records timed out after 0.5s" in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert "exiting without waiting for 1 abandoned call(s): pull: HangPull.pull_records" in last
    assert calls_of(host, "HangPull") == 1
    assert host["atexit"].exists()  # a normal interpreter exit: plugins' atexit handlers ran


@pytest.mark.slow
def test_a_hung_pull_is_called_again_only_after_it_returned(host) -> None:
    host["configure"](pull={"timeout": 0.3})
    proc = host["spawn"]()
    wait_until("the first call", lambda: calls_of(host, "HangPull") == 1, proc)
    start = calls_of(host, "Ticker")
    # The ticker runs on the same interval, one pass after another: each of these passes
    # found HangPull due, with its timed-out call still running.
    wait_until("ten more passes", lambda: calls_of(host, "Ticker") >= start + 10, proc)
    assert calls_of(host, "HangPull") == 1
    host["release"].touch()
    wait_until("a call after the return", lambda: calls_of(host, "HangPull") == 2, proc)
    steps = [entry["step"] for entry in lines(host["pull_log"])]
    first_return = steps.index("HangPull returned")
    assert steps.index("HangPull") < first_return < len(steps) - 1 - steps[::-1].index("HangPull")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = host["stderr"].read_text()
    assert "pull_records timed out after 0.3s" in stderr
    assert "the abandoned pull_records call returned after" in stderr


def sigterm_during_a_hung_sync_call(host: Any, grace: float, *args: str) -> str:
    """Spawn `run *args` on a Site whose sync call hangs, SIGTERM it once that call (and,
    for `run` alone, the hung pull) started, and check the clean exit: 0 within the grace
    period, through a normal interpreter exit. Returns the last line it logged."""
    created = host["cli"]("objects", "create", "Site", "name=stuck", f"behaviour=hang:{HANG}")
    assert created.returncode == 0, created.stderr
    proc = host["spawn"](*args)
    if not args:
        wait_until("the pull call", lambda: calls_of(host, "HangPull") >= 1, proc)
    wait_until(
        "the sync call",
        lambda: any(e["event"] == "start" for e in lines(host["sync_log"])),
        proc,
    )
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    # no new work, the running call gets the grace period, then a normal exit
    assert proc.wait(timeout=grace + 30) == 0
    assert time.monotonic() - signalled < grace + MARGIN
    assert host["atexit"].exists()
    last: str = host["stderr"].read_text().strip().splitlines()[-1]
    assert "exiting without waiting for" in last and "sync: Site 1 (" in last
    return last


@pytest.mark.slow
@pytest.mark.parametrize("timeouts", [False, True], ids=["no-timeouts", "timeouts"])
def test_sigterm_with_hung_calls_exits_0_through_atexit(host, timeouts) -> None:
    grace = 2.0
    if timeouts:
        host["configure"](sync={"grace_period": grace, "timeout": 0.5}, pull={"timeout": 0.5})
    else:
        host["configure"](sync={"grace_period": grace})
    last = sigterm_during_a_hung_sync_call(host, grace)
    assert "pull: HangPull.pull_records (" in last
    if timeouts:
        assert "pull: HangPull.pull_records (timed out after 0.5s" in last
    else:
        assert "grace period over; abandoning" in host["stderr"].read_text()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--once", "--until-idle"])
def test_sigterm_ends_once_and_until_idle_cleanly(host, mode) -> None:
    grace = 2.0
    host["configure"](sync={"grace_period": grace}, pull={"timeout": 0.5})
    sigterm_during_a_hung_sync_call(host, grace, mode)
