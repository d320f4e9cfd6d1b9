"""Every engine over a core: a real `xos-runtime run --until-idle` whose
`accessor.endpoint` is a real `core serve` process runs sync steps, model policies, a pull
step and an event step of its folders, and a log of every call says what each did."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml
from installed import plugins_line

from .conftest import PASSWORDS, Core, Project, _env

#: What each plugin module starts with: one log of every call, from every process.
LOG = """
import json, os

def log(*what):
    with open(os.environ["XRT_CORE_LOG"], "a") as f:
        f.write(json.dumps([os.getpid(), *what]) + "\\n")
"""

STEPS = """
from xos_runtime import SyncStep

class SyncSite(SyncStep):
    observes = "Site"
    def sync_record(self, obj):
        log("sync", "Site", obj.name)
    def delete_record(self, obj):
        log("delete", "Site", obj.name)

class SyncSlice(SyncStep):
    observes = "Slice"
    def sync_record(self, obj):
        log("sync", "Slice", obj.name, obj.site.name)
"""

POLICIES = """
from xos_runtime import ModelPolicy

class SitePolicy(ModelPolicy):
    model_name = "Site"
    def handle_create(self, site):
        log("handle_create", "Site", site.name)
        self.model_accessor.Slice.objects.create(name=site.name + "-slice", site=site)
"""

PULLS = """
from xos_runtime import PullStep

class PullSites(PullStep):
    interval = 3600
    def pull_records(self):
        log("pull")
        Site = self.model_accessor.Site
        if not Site.objects.filter(name="pulled").exists():
            Site.objects.create(name="pulled")
"""

EVENTS = """
from xos_runtime import EventStep

class SiteEvents(EventStep):
    topics = ["new-sites"]
    def process_event(self, event):
        name = event.value.decode() if isinstance(event.value, bytes) else event.value
        log("event", name)
        self.model_accessor.Site.objects.create(name=name)

class AuditEvents(EventStep):
    pattern = "audit-.*"
    def process_event(self, event):
        log("pattern", event.topic)
"""


def _runtime(root: Path, core: Core) -> Path:
    """A synchronizer's folder: its steps, its models, its config pointing at the core."""
    for folder, text in (
        ("steps", STEPS),
        ("policies", POLICIES),
        ("pulls", PULLS),
        ("events", EVENTS),
    ):
        (root / folder).mkdir(parents=True)
        (root / folder / f"{folder}.py").write_text(LOG + textwrap.dedent(text))
    (root / "models").mkdir()
    (root / "models" / "coretest.xproto").write_text(
        (core.project.root / "models" / "coretest.xproto").read_text()
    )
    config = {
        "name": "remote-sync",
        "core_version": ">=4.0.0",
        "models_dir": "models",
        "steps_dir": "steps",
        "model_policies_dir": "policies",
        "pull_steps_dir": "pulls",
        "event_steps_dir": "events",
        "accessor": {"endpoint": core.url, "username": "vsg", "password": PASSWORDS["vsg"]},
        "sync": {"poll_interval": 0.5},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config) + plugins_line())
    return path


def _calls(log: Path) -> list[list[object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_every_engine_runs_over_a_core(tmp_path: Path) -> None:
    project = Project(tmp_path / "core")
    project.add_users()
    core = Core(project)
    try:
        for name in ("east", "west"):
            made = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": name})
            assert made.status_code == 201, made.text
        config = _runtime(tmp_path / "sync", core)
        log = tmp_path / "calls.jsonl"
        env = {**_env(), "XRT_CORE_LOG": str(log)}
        for topic, value in (("new-sites", "from-event"), ("audit-sites", "seen")):
            published = subprocess.run(
                [sys.executable, "-m", "xos_runtime", "events", "publish", "-C", str(config),
                 topic, value],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert published.returncode == 0, published.stderr
        ran = subprocess.run(
            [sys.executable, "-m", "xos_runtime", "run", "--until-idle", "-C", str(config)],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path / "sync",
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-3000:]
        calls = _calls(log)
        assert len({c[0] for c in calls}) == 1, "one runtime (the run) made every call"
        what = Counter(tuple(c[1:3]) if c[1] != "sync" else tuple(c[1:4]) for c in calls)
        sites = ("east", "west", "pulled", "from-event")
        # the pull and event steps ran once, and created their sites
        assert what[("pull",)] == 1, calls
        assert what[("event", "from-event")] == 1, calls
        assert what[("pattern", "audit-sites")] == 1, calls  # a pattern's topics too
        # every site policed once and synced once; every slice its policy made synced once
        for site in sites:
            assert what[("handle_create", "Site")] == len(sites), calls
            assert what[("sync", "Site", site)] == 1, calls
            assert what[("sync", "Slice", f"{site}-slice")] == 1, calls
        # and the core's store says so: in sync, policed
        listed = core.call("GET", "/xosapi/v1/coretest/sites").json()["items"]
        assert sorted(s["name"] for s in listed) == sorted(sites)
        for site in listed:
            assert site["enacted"] is not None and site["enacted"] >= site["updated"], site
            assert site["policy_code"] == 1 and site["backend_code"] == 1, site
    finally:
        core.stop()
    assert "internal error" not in core.stderr(), core.stderr()


def test_metrics_of_a_runtime_over_a_core(tmp_path: Path) -> None:
    """A `run` over a core serves its metrics and its status page; the objects gauge and
    the page's views of the store are the core's."""
    import socket
    import time

    import requests
    from prometheus_client.parser import text_string_to_metric_families

    project = Project(tmp_path / "core")
    project.add_users()
    core = Core(project)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _runtime(tmp_path / "sync", core)
    text = config.read_text().replace("sync:", f"metrics: {{enabled: true, port: {port}}}\nsync:")
    config.write_text(text)
    env = {**_env(), "XRT_CORE_LOG": str(tmp_path / "calls.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "xos_runtime", "run", "-C", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path / "sync",
    )  # fmt: skip
    try:
        core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "watched"})
        deadline = time.monotonic() + 60
        found: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except requests.ConnectionError:
                body = ""
            found = {
                (s.labels["model"], s.labels["state"]): s.value
                for family in text_string_to_metric_families(body)
                if family.name == "xos_runtime_objects"
                for s in family.samples
            }
            if found.get(("Site", "ok")):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        assert found.get(("Site", "ok")), found
        # the status page's views of the store: the core makes them
        api = f"http://127.0.0.1:{port}/api"
        watched: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # (the pull step may still be adding a site)
            listed = requests.get(f"{api}/objects/Site", timeout=5).json()["objects"]
            watched = [o for o in listed if o["name"] == "watched"]
            if watched and watched[0]["state"] == "ok":
                break
            time.sleep(0.1)
        assert len(watched) == 1 and watched[0]["state"] == "ok", watched
        status = requests.get(f"{api}/status", timeout=5).json()
        assert status["counts"]["Site"]["ok"] >= 1 and "processes" in status, status
        one = requests.get(f"{api}/objects/Site/{watched[0]['id']}", timeout=5).json()
        assert one["fields"]["name"] == "watched" and one["fields"]["backend_code"] == 1, one
        assert requests.get(f"{api}/objects/Nowhere", timeout=5).status_code == 404
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        core.stop()


EVENT_STEP = """
import json, os, time
from xos_runtime import EventStep

class Slow(EventStep):
    topics = ["restarting"]
    def process_event(self, event):
        value = event.value.decode() if isinstance(event.value, bytes) else event.value
        with open(os.environ["XRT_CORE_LOG"], "a") as f:
            f.write(json.dumps([os.getpid(), value]) + "\\n")
        time.sleep(0.02)
"""


def test_event_steps_carry_on_when_the_core_restarts(tmp_path: Path) -> None:
    """A `run` consuming the core's event log while the core is stopped and started again
    on the same port: every message is handled (at least once), the runtime says it waited,
    and it stops cleanly."""
    import time

    project = Project(tmp_path / "core")
    project.add_users()
    core = Core(project)
    port = int(core.url.rsplit(":", 1)[1])
    root = tmp_path / "sync"
    (root / "events").mkdir(parents=True)
    (root / "events" / "slow.py").write_text(textwrap.dedent(EVENT_STEP))
    config = root / "config.yaml"
    accessor = {"endpoint": core.url, "username": "vsg", "password": PASSWORDS["vsg"]}
    config.write_text(
        yaml.safe_dump({"name": "events-remote", "event_steps_dir": "events",
                        "accessor": {**accessor, "retry_for": 0.5}}) + plugins_line()
    )  # fmt: skip
    values = [f"m{i}" for i in range(100)]
    for value in values:
        made = core.call("POST", "/xosapi/v1/events/restarting", json={"value": value})
        assert made.status_code == 201, made.text
    log = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xos_runtime", "run", "-C", str(config)],
        env={**_env(), "XRT_CORE_LOG": str(log)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, cwd=root,
    )  # fmt: skip

    def handled() -> list[str]:
        return [str(c[1]) for c in _calls(log)]

    def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
            time.sleep(0.05)

    try:
        wait_for(lambda: len(handled()) >= 20, "20 messages handled")
        core.stop()
        core = Core(project, port=port)
        wait_for(lambda: set(values) <= set(handled()), "every message handled")
    finally:
        proc.terminate()
        code = proc.wait(30)
        err = proc.stderr.read() if proc.stderr else ""
        core.stop()
    assert code == 0, err[-3000:]
    assert "does not answer" in err, err[-3000:]
    again = len(handled()) - len(values)
    assert again <= 50, f"{again} messages handled twice: more than a fetch in flight"
