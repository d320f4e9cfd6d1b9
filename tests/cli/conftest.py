"""Fixtures for the command-line tests: a project folder, the CLI in-process and as a process."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from installed import plugins_line
from loguru import logger

import xos_runtime
from xos_runtime.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[2]

XPROTO = """\
option app_label = "clitest";
option custom_option = "kept and ignored";

message Site (XOSBase) {
    required string name = 1 [max_length = 64, frobnicate = "unknown options are ignored"];
    optional bool enabled = 2 [default = True];
    optional int32 quota = 3;
}

message User (XOSBase) {
    required string email = 1;
    required manytoone site->Site:users = 2;
}

message Service (XOSBase) {
    required string name = 1;
}

message VSG (Service) {
    optional int32 vlan = 1;
}
"""

#: The bookkeeping fields every model carries (contract section 4), `id` included.
BOOKKEEPING = {
    "id",
    "created",
    "updated",
    "enacted",
    "policed",
    "deleted",
    "write_protect",
    "lazy_blocked",
    "no_sync",
    "no_policy",
    "backend_status",
    "backend_code",
    "backend_register",
    "backend_need_delete",
    "backend_need_reap",
    "policy_status",
    "policy_code",
    "leaf_model_name",
    "changed_by_step",
    "changed_by_policy",
}


def config_text(extra: str = "", *, name: str = "clitest") -> str:
    lines = [f"name: {name}", "models_dir: models", "accessor: {endpoint: sqlite:///store.db}"]
    return "\n".join(lines) + "\n" + plugins_line() + extra


@dataclasses.dataclass
class Project:
    """A folder with `config.yaml`, `models/demo.xproto` and (once used) `store.db`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def xproto(self) -> Path:
        return self.models / "demo.xproto"

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.store}"

    def write_config(self, text: str, name: str = "config.yaml") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def write_xproto(self, text: str) -> Path:
        self.xproto.write_text(text)
        return self.xproto


def make_project(parent: Path) -> Project:
    proj = Project(parent / "proj")
    proj.models.mkdir(parents=True)
    proj.write_xproto(XPROTO)
    proj.write_config(config_text())
    return proj


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path)


@dataclasses.dataclass
class Result:
    code: int | str | None
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*argv)`: `main(argv)` in this process; exit code and captured output."""

    def run(*argv: str | os.PathLike[str]) -> Result:
        capsys.readouterr()
        try:
            code: int | str | None = main([os.fspath(a) for a in argv])
        except SystemExit as exc:  # argparse: bad usage
            code = exc.code
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def xrt(cli: Cli, project: Project) -> Cli:
    """`xrt("objects", "list", "Site")`: the CLI on the project's config (`-C` appended)."""

    def run(*argv: str) -> Result:
        return cli(*argv, "-C", project.config)

    return run


@pytest.fixture
def seeded(xrt: Cli) -> None:
    """Site 1 's1' (quota 5) and User 1 'a@example.org' of it, created through the CLI."""
    assert xrt("objects", "create", "Site", "name=s1", "quota=5").code == 0
    assert xrt("objects", "create", "User", "email=a@example.org", "site=1").code == 0


Snapshot = dict[str, dict[str, list[dict[str, Any]]]]


def store_snapshot(url: str) -> Snapshot:
    """Every row of every model, live and soft-deleted, read through `connect(url)`."""
    acc = xos_runtime.connect(url)
    try:
        return {
            name: {
                "live": sorted((o.to_dict() for o in cls.objects.all()), key=lambda r: r["id"]),
                "deleted": sorted(
                    (o.to_dict() for o in cls.deleted_objects.all()), key=lambda r: r["id"]
                ),
            }
            for name, cls in acc.get_all_model_classes().items()
        }
    finally:
        acc.close()


def run_process(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m xos_runtime ARGS` on this checkout, without an inherited XOS_CONFIG_FILE."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    full_env.pop("XOS_CONFIG_FILE", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "xos_runtime", *map(os.fspath, args)],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def _only_fixture_distributions() -> None:
    """Overrides the suite-wide fixture that hides installed plugin distributions.

    The CLI tests see the environment's distributions, as the real command (and the
    subprocess tests) do; their config turns the demo off through `plugins.disabled`, so
    in-process and subprocess runs discover the same plugins.
    """


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No XOS_CONFIG_FILE from the caller; loguru back on the real stderr afterwards.

    `main()` points loguru at the `sys.stderr` of the moment, which is pytest's capture.
    """
    monkeypatch.delenv("XOS_CONFIG_FILE", raising=False)
    yield
    logger.remove()
    logger.add(sys.stderr)
