"""`xos-runtime run` as a user runs it: a real process over the installed test plugin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from xos_runtime import connect

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, installed_dists):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed_dists["xrt-engine"]), str(REPO)]),
        "XRT_ENGINE_LOG": str(tmp_path / "calls.jsonl"),
    }
    config = tmp_path / "config.yaml"

    def write(metrics: dict | None = None, **sync: object) -> Path:
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "cli-test",
                    "accessor": {"endpoint": "sqlite:///store.db"},
                    "sync": {"workers": 2, "poll_interval": 0.5, **sync},
                    "plugins": {"disabled": ["xos-runtime-demo"]},
                    "metrics": metrics or {"enabled": False},
                }
            )
        )
        return config

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xos_runtime", *args],
            env=env,
            text=True,
            capture_output=True,
            timeout=timeout,
            cwd=tmp_path,
        )

    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "xos_runtime", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )

    write()
    return {
        "write": write,
        "run": run,
        "spawn": spawn,
        "config": config,
        "url": f"sqlite:///{tmp_path}/store.db",
        "log": tmp_path / "calls.jsonl",
    }


def create(cli, model: str, *pairs: str) -> int:
    out = cli["run"]("objects", "create", "-C", str(cli["config"]), "--json", model, *pairs)
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)["id"])


def test_once_exit_codes(cli) -> None:
    site = create(cli, "Site", "name=a")
    create(cli, "Slice", "name=sl", f"site={site}")
    ok = cli["run"]("run", "-C", str(cli["config"]), "--once")
    assert ok.returncode == 0, ok.stderr
    acc = connect(cli["url"])
    assert all(o.backend_code == 1 for o in acc.Slice.objects.all())
    create(cli, "Site", "name=b", "behaviour=fail")
    bad = cli["run"]("run", "-C", str(cli["config"]), "--once")
    assert bad.returncode == 1
    assert "boom b" in bad.stderr
    acc.close()


def test_until_idle_runs_until_nothing_is_ready(cli) -> None:
    site = create(cli, "Site", "name=a", "behaviour=fail-once")
    create(cli, "Slice", "name=sl", f"site={site}")
    create(cli, "Site", "name=b")
    out = cli["run"]("run", "-C", str(cli["config"]), "--until-idle")
    # a failed in this run: not retried, so the run ends, with objects in error
    assert out.returncode == 1, out.stderr
    status = cli["run"]("status", "-C", str(cli["config"]), "--json")
    report = json.loads(status.stdout)
    states = {(o["model"], o["name"]): o["state"] for o in report["objects"]}
    assert states[("Site", "a")] == "error"
    assert states[("Slice", "sl")] == "held_back"
    assert ("Site", "b") not in states
    assert report["models"]["Site"] == {"total": 2, "ok": 1, "error": 1}


def test_until_idle_timeout_exits_1(cli) -> None:
    create(cli, "Site", "name=busy", "behaviour=touch")  # pending again after every sync
    started = time.monotonic()
    out = cli["run"]("run", "-C", str(cli["config"]), "--until-idle", "--timeout", "1")
    assert out.returncode == 1
    assert "timed out" in out.stderr
    assert time.monotonic() - started < 30


def test_until_idle_does_not_wait_for_a_timed_out_call(cli) -> None:
    cli["write"](timeout=0.5)
    create(cli, "Site", "name=stuck", "behaviour=hang:60")
    started = time.monotonic()
    out = cli["run"]("run", "-C", str(cli["config"]), "--until-idle")
    assert out.returncode == 1
    assert time.monotonic() - started < 20
    acc = connect(cli["url"])
    assert acc.Site.objects.get(name="stuck").backend_status == (
        "sync_record timed out after 0.5s; the call has not returned yet"
    )
    acc.close()


def _wait_for_line(path: Path, predicate, deadline: float) -> dict:
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if predicate(entry):
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no matching line in {path} before the deadline")


def test_run_picks_up_changes_and_drains_on_sigterm(cli) -> None:
    proc = cli["spawn"]("run", "-C", str(cli["config"]))
    try:
        deadline = time.monotonic() + 30
        create(cli, "Site", "name=live")
        _wait_for_line(cli["log"], lambda e: e["event"] == "end" and e["name"] == "live", deadline)
        create(cli, "Site", "name=slow", "behaviour=sleep:1500")
        _wait_for_line(
            cli["log"], lambda e: e["event"] == "start" and e["name"] == "slow", deadline
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # the running call was allowed to finish and its outcome was stored
    acc = connect(cli["url"])
    row = acc.Site.objects.get(name="slow")
    assert row.backend_code == 1 and row.enacted is not None
    acc.close()


def test_broken_plugin_stops_startup_with_exit_2(cli, installed_dists) -> None:
    env_path = os.pathsep.join(
        [str(installed_dists["xrt-broken"]), str(installed_dists["xrt-engine"]), str(REPO)]
    )
    out = subprocess.run(
        [sys.executable, "-m", "xos_runtime", "run", "-C", str(cli["config"]), "--once"],
        env={**os.environ, "PYTHONPATH": env_path},
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "xrt-broken" in out.stderr and "failed to load" in out.stderr
    assert "plugins: {skip_broken: true}" in out.stderr  # how to start without it


def test_commands_that_only_look_start_without_a_broken_plugin(cli, installed_dists) -> None:
    """`status` and `graph` go on, with a warning naming the plugin and why; `check` and
    `run` stop (above)."""
    env_path = os.pathsep.join(
        [str(installed_dists["xrt-broken"]), str(installed_dists["xrt-engine"]), str(REPO)]
    )
    env = {**os.environ, "PYTHONPATH": env_path}
    for command in ("status", "graph"):
        out = subprocess.run(
            [sys.executable, "-m", "xos_runtime", command, "-C", str(cli["config"])],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "failed to load" in out.stderr
        assert f"`{command}` goes on without it; `run` and `check` stop here" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "xos_runtime", "check", "-C", str(cli["config"])],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 1 and "failed to load" in out.stderr  # check: 1


def test_graph_shows_the_step_order(cli) -> None:
    out = cli["run"]("graph", "-C", str(cli["config"]))
    assert out.returncode == 0, out.stderr
    assert (
        "sync order (deletion runs it backwards): Node -> Site -> Slice -> Instance" in out.stdout
    )
    assert "  Site: SyncSite\n  Slice: SyncSlice\n  Instance: SyncInstance" in out.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _labels(**labels: str) -> frozenset:
    return frozenset(labels.items())


def test_metrics_and_health_endpoints(cli) -> None:
    import requests

    port = _free_port()
    cli["write"](metrics={"enabled": True, "port": port})
    proc = cli["spawn"]("run", "-C", str(cli["config"]))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert health is not None and health.status_code == 200 and health.text == "ok\n"
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert (ready.status_code, ready.text) == (200, "ready\n")
        create(cli, "Site", "name=ok")
        create(cli, "Site", "name=bad", "behaviour=fail")
        _wait_for_line(cli["log"], lambda e: e["event"] == "end" and e["name"] == "bad", deadline)
        error = (
            "xos_runtime_outcomes_total",
            _labels(engine="sync", step="SyncSite", outcome="error"),
        )
        samples: dict = {}
        while time.monotonic() < deadline:
            response = requests.get(f"{base}/metrics", timeout=2)
            assert response.headers["Content-Type"].startswith("text/plain")
            samples = _samples(response.text)
            if samples.get(error) == 1:
                break
            time.sleep(0.05)
        success = _labels(engine="sync", step="SyncSite", outcome="success")
        assert samples[("xos_runtime_outcomes_total", success)] == 1
        assert samples[error] == 1
        timed = _labels(engine="sync", step="SyncSite")
        assert samples[("xos_runtime_call_duration_seconds_count", timed)] == 2
        assert samples[("xos_runtime_call_duration_seconds_bucket", timed | {("le", "+Inf")})] == 2
        assert samples[("xos_runtime_call_duration_seconds_sum", timed)] > 0
        # objects by state: what the store says, counted by the database
        acc = connect(cli["url"])
        assert {o.name: o.backend_code for o in acc.Site.objects.all()} == {"ok": 1, "bad": 2}
        acc.close()
        assert samples[("xos_runtime_objects", _labels(model="Site", state="error"))] == 1
        assert samples[("xos_runtime_objects", _labels(model="Site", state="ok"))] == 1
        assert samples[("xos_runtime_store_up", frozenset())] == 1
        assert samples[("process_resident_memory_bytes", frozenset())] > 0
        assert samples[("process_open_fds", frozenset())] > 0
        assert any(name == "python_info" for name, _ in samples)
        # a call in flight holds its claim (the SQLite file is shared: claims are on)
        create(cli, "Site", "name=slow", "behaviour=sleep:2000")
        _wait_for_line(
            cli["log"], lambda e: e["event"] == "start" and e["name"] == "slow", deadline
        )
        samples = _samples(requests.get(f"{base}/metrics", timeout=2).text)
        assert samples[("xos_runtime_claims", _labels(kind="sync"))] == 1
        assert requests.get(f"{base}/nope", timeout=2).status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("hook", ["configure", "models", "startup"])
def test_a_failing_plugin_hook_stops_startup_with_one_line(cli, installed_dists, hook) -> None:
    env_path = os.pathsep.join(
        [str(installed_dists["xrt-hookfail"]), str(installed_dists["xrt-engine"]), str(REPO)]
    )
    out = subprocess.run(
        [sys.executable, "-m", "xos_runtime", "run", "-C", str(cli["config"]), "--once"],
        env={**os.environ, "PYTHONPATH": env_path, "XRT_HOOKFAIL": hook},
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert (
        f"xos-runtime: error: plugin 'xrt-hookfail 0.1' entry point xos_runtime:hookfail = "
        f"xrt_hookfail.hooks failed in xos_runtime_{hook}: RuntimeError: {hook} hook broke"
    ) in out.stderr


def test_until_idle_timeout_bounds_a_long_call(cli) -> None:
    create(cli, "Site", "name=slow", "behaviour=sleep:5000")  # no per-call timeout set
    started = time.monotonic()
    out = cli["run"]("run", "-C", str(cli["config"]), "--until-idle", "--timeout", "1")
    assert out.returncode == 1 and "timed out" in out.stderr
    assert time.monotonic() - started < 4.5  # did not wait for the 5 s call


def test_until_idle_that_finishes_in_time_exits_0(cli) -> None:
    create(cli, "Site", "name=quick", "behaviour=sleep:200")
    out = cli["run"]("run", "-C", str(cli["config"]), "--until-idle", "--timeout", "30")
    assert out.returncode == 0, out.stderr
    assert "timed out" not in out.stderr


def test_run_usage_errors_exit_2(cli) -> None:
    for args in (
        ["--timeout", "5"],
        ["--until-idle", "--timeout", "-1"],
        ["--until-idle", "--timeout", "nan"],
    ):
        out = cli["run"]("run", "-C", str(cli["config"]), *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_unusable_log_file_and_metrics_port_are_config_errors(cli) -> None:
    import socket

    text = cli["config"].read_text()
    cli["config"].write_text(text + "logging: {file: /proc/nope/x.log}\n")
    out = cli["run"]("run", "-C", str(cli["config"]), "--once")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "logging.file: cannot write the log file '/proc/nope/x.log'" in out.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cli["write"](metrics={"enabled": True, "port": port})
        out = cli["run"]("run", "-C", str(cli["config"]), timeout=30)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"metrics.port: cannot listen on 127.0.0.1:{port}" in out.stderr
