"""A real `xos-runtime run` with metrics on, over a small project whose one site fails
(the `start_run` fixture of `conftest.py` starts it).

The project: models Site <- Slice <- Instance (three layers of the dependency graph), a steps
folder whose `SyncSite` fails for a site named `broken-*`, and objects: site `good` with
slice `fine`, site `broken-east` with slice `held` and instance `held-vm` (held back by it).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from installed import plugins_line

REPO = Path(__file__).resolve().parents[2]

XPROTO = """\
option app_label = "page";

message Site (XOSBase) {
    required string name = 1;
}

message Slice (XOSBase) {
    required string name = 1;
    required manytoone site->Site:slices = 2;
}

message Instance (XOSBase) {
    required string name = 1;
    required manytoone slice->Slice:instances = 2;
}
"""

STEPS = """\
from xos_runtime import SyncStep


class SyncSite(SyncStep):
    observes = "Site"

    def sync_record(self, obj):
        if obj.name.startswith("broken"):
            raise ConnectionError(f"cannot reach the controller of {obj.name}")


class SyncSlice(SyncStep):
    observes = "Slice"

    def sync_record(self, obj):
        pass


class SyncInstance(SyncStep):
    observes = "Instance"

    def sync_record(self, obj):
        pass
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    """`check()`'s first truthy value, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclasses.dataclass
class Running:
    """The project folder, its `run` process, the base URL of its endpoint, its objects."""

    root: Path
    process: subprocess.Popen[str]
    base: str
    ids: dict[str, int]

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`xos-runtime ARGS -C config` as a separate process."""
        return cli(self.root, *args)

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 20 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("XOS_CONFIG_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "xos_runtime", *args, "-C", str(root / "config.yaml")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def write_project(root: Path, port: int, endpoint: str = "sqlite:///store.db") -> None:
    (root / "models").mkdir(parents=True)
    (root / "models" / "page.xproto").write_text(XPROTO)
    (root / "steps").mkdir()
    (root / "steps" / "steps.py").write_text(STEPS)
    (root / "config.yaml").write_text(
        textwrap.dedent(f"""\
            name: page
            models_dir: models
            steps_dir: steps
            accessor: {{endpoint: "{endpoint}"}}
            sync: {{poll_interval: 0.2, backoff: {{initial: 60, max: 60}}}}
            metrics: {{enabled: true, port: {port}}}
            """)
        + plugins_line()
    )


def seed(root: Path) -> dict[str, int]:
    """The objects, made in this process (the store's schema comes with them)."""
    from xos_runtime.host import Runtime

    rt = Runtime.load(str(root / "config.yaml"))
    try:
        acc = rt.accessor
        good = acc.Site.objects.create(name="good")
        broken = acc.Site.objects.create(name="broken-east")
        held = acc.Slice.objects.create(name="held", site=broken)
        return {
            "good": good.id,
            "fine": acc.Slice.objects.create(name="fine", site=good).id,
            "broken-east": broken.id,
            "held": held.id,
            "held-vm": acc.Instance.objects.create(name="held-vm", slice=held).id,
        }
    finally:
        rt.close()
