"""Fixtures of the fault-injection tests: a `Cluster` of real `xos-runtime run` processes.

`backend` is parametrized over a SQLite file and the PostgreSQL server; `make_cluster(**opts)`
builds a `Cluster` on a fresh store of that backend with the `xrt-calllog` plugin installed
(in the test process too, so the test can seed objects through the accessor). Every process
is killed at the end of the test, whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Cluster, fresh_pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/store.db"
        return fresh_pg_schema(request.getfixturevalue("pg_database"))

    return make


@pytest.fixture
def make_cluster(
    tmp_path: Path,
    installed_dists: dict[str, Path],
    use_dists: Callable[..., None],
    store_for: Callable[[str], str],
) -> Iterator[Callable[..., Cluster]]:
    use_dists("xrt-calllog")
    made: list[Cluster] = []

    def make(backend: str, **options: Any) -> Cluster:
        cluster = Cluster(
            tmp_path / f"cluster-{len(made)}",
            store_for(backend),
            [installed_dists["xrt-calllog"]],
            **options,
        )
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
