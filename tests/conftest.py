"""Fixtures shared by the whole suite: store endpoints on real databases, and real plugin
distributions.

Each directory of `tests/fixtures/plugins/` is a distribution with its own `pyproject.toml`.
The first test that needs one installs all of them, in parallel, with
`pip install --no-deps --no-build-isolation --target <session tmp>/<dist>`; a test then puts
the targets it wants on `sys.path`, exactly where an installed distribution would be found.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from loguru import logger

from xos_runtime.plugins.directories import ROOT_PACKAGE

PG_ADMIN_URL = os.environ.get(
    "XRT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database on the local server, dropped at the end."""
    name = f"xrt_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def fresh_pg_endpoint(database_url: str) -> str:
    """A new, empty schema in the test database, as a store URL that uses it."""
    from faults.harness import fresh_pg_schema  # one place for it, shared with the benchmark

    return fresh_pg_schema(database_url)


@pytest.fixture
def pg_store_url(pg_database: str) -> str:
    """A fresh, empty PostgreSQL store endpoint."""
    return fresh_pg_endpoint(pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty store endpoint on each real backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return fresh_pg_endpoint(request.getfixturevalue("pg_database"))


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "plugins"
FIXTURE_PACKAGES = ("xrt_",)


def _can_build_wheels() -> bool:
    """Whether setuptools can build a wheel here without build isolation."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (70, 1)  # setuptools has its own bdist_wheel since 70.1


def _pip_install(*args: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        "--quiet",
        "--no-deps",
        *map(str, args),
    ]


def _build_env(root: Path) -> dict[str, str] | None:
    """The environment of `pip install` builds without isolation: setuptools < 70.1 needs
    the `wheel` package to build, so a newer setuptools is used for the builds only, without
    touching the environment the tests run in."""
    if _can_build_wheels():
        return None
    tools = root / "_buildtools"
    subprocess.run(_pip_install("--target", tools, "setuptools>=70.1"), check=True)
    return {**os.environ, "PYTHONPATH": str(tools)}


@pytest.fixture(scope="session")
def demo_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo plugin (`plugins/xos-runtime-demo`) installed into a directory of
    its own (put it on PYTHONPATH), for tests of what the README does with it."""
    root = tmp_path_factory.mktemp("demo-dist")
    copy = root / "src"
    shutil.copytree(Path(__file__).resolve().parents[1] / "plugins" / "xos-runtime-demo", copy)
    target = root / "target"
    cmd = _pip_install("--no-build-isolation", "--no-index", "--target", target, copy)
    done = subprocess.run(cmd, env=_build_env(root), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.fixture(scope="session")
def installed_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture distribution installed into its own target directory, by name."""
    root = tmp_path_factory.mktemp("plugin-dists")
    env = _build_env(root)
    targets: dict[str, Path] = {}
    procs = []
    for source in sorted(p for p in FIXTURES.iterdir() if (p / "pyproject.toml").exists()):
        # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
        copy = root / "src" / source.name
        shutil.copytree(source, copy)
        target = root / source.name
        cmd = _pip_install("--no-build-isolation", "--no-index", "--target", target, copy)
        procs.append(
            (
                source.name,
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
            )
        )
        targets[source.name] = target
    for name, proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            pytest.fail(f"installing fixture distribution {name} failed:\n{out.decode()}")
    return targets


@pytest.fixture(autouse=True)
def _forget_plugin_modules() -> Iterator[None]:
    """Unimport the fixture plugins' modules after each test, so tests do not see each other's."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(FIXTURE_PACKAGES) or name.split(".")[0] == ROOT_PACKAGE:
            del sys.modules[name]


@pytest.fixture
def use_dists(
    installed_dists: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """Put the named fixture distributions on `sys.path` for this test."""

    def use(*names: str) -> None:
        for name in names:
            monkeypatch.syspath_prepend(str(installed_dists[name]))
        importlib.invalidate_caches()  # importlib.metadata's path caches

    return use


@pytest.fixture
def log_messages() -> Iterator[list[tuple[str, str]]]:
    """`(level, message)` of everything logged through loguru during the test."""
    records: list[tuple[str, str]] = []
    sink_id = logger.add(
        lambda m: records.append((m.record["level"].name, m.record["message"])), level="DEBUG"
    )
    yield records
    logger.remove(sink_id)


@pytest.fixture(autouse=True)
def _only_fixture_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide plugins installed in the environment (the demo, say): these tests count plugins.

    Discovery itself is unchanged; only the distributions it is shown are narrowed to the
    fixture ones (`xrt-*`) and xos-runtime itself.
    """
    from xos_runtime.plugins import entrypoints, manager

    real = entrypoints.entry_points_of

    def fixture_only(group: str) -> list[Any]:
        keep = []
        for ep in real(group):
            dist, _version = entrypoints.distribution_of(ep)
            if dist is None or dist.startswith("xrt-") or dist == "xos-runtime":
                keep.append(ep)
        return keep

    monkeypatch.setattr(manager, "entry_points_of", fixture_only)
