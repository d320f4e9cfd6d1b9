"""A runtime over the `xrt-engine` test plugin distribution, with a clock the test controls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from xos_runtime.host import Runtime


class FakeClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine_steps(use_dists: Callable[..., None]) -> Any:
    use_dists("xrt-engine")
    import xrt_engine.steps as steps

    steps.reset()
    yield steps
    steps.RELEASE.set()  # let any hanging call go


@pytest.fixture
def make_runtime(
    tmp_path: Path, clock: FakeClock, engine_steps: Any
) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def make(*, store_url: str | None = None, **sections: Any) -> Runtime:
        config = {
            "name": "engine-test",
            "accessor": {"endpoint": store_url or f"sqlite:///{tmp_path}/store.db"},
            "sync": {"workers": 4, "backoff": {"initial": 1, "factor": 2, "max": 60, "jitter": 0}},
            "policies": {"backoff": {"initial": 1, "factor": 2, "max": 60, "jitter": 0}},
            "events": {"backoff": {"initial": 1, "factor": 2, "max": 60, "jitter": 0}},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}  # type: ignore[dict-item]
            else:
                config[key] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        runtime = Runtime.load(str(path), clock=clock)
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()


@pytest.fixture
def policies(engine_steps: Any, use_dists: Any) -> Any:
    use_dists("xrt-policy")
    import xrt_policy.policies as module
    import xrt_policy.pull as pull

    module.reset()
    pull.reset()
    return module
