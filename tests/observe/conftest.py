"""Fixtures of the observe tests: `start_run`, a real `run` with metrics on (`observed_run`)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from observed_run import REPO, Running, free_port, seed, wait_for, write_project


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """`start_run(endpoint=...)`: the project seeded and `run` serving, its `/healthz` up."""
    started: list[Running] = []

    def start(endpoint: str = "sqlite:///store.db") -> Running:
        root = tmp_path / "project"
        port = free_port()
        write_project(root, port, endpoint)
        ids = seed(root)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("XOS_CONFIG_FILE", None)
        log = root / "run.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "xos_runtime", "run", "-C", str(root / "config.yaml")],
                env=env,
                cwd=root,
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        base = f"http://127.0.0.1:{port}"
        started.append(Running(root, proc, base, ids))

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return requests.get(f"{base}/healthz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(healthy, "/healthz")
        return started[-1]

    yield start
    for run in started:
        run.stop()
