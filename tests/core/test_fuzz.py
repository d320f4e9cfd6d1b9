"""A property-based fuzz test of the core's API: schemathesis against `/openapi.json`.

Valid and invalid requests of every operation of every model, a bounded number of them,
against a real server process. No answer is a 5xx, and a refused write changes nothing
(every table of the store, read before and after, is the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from .conftest import PASSWORDS, Core, Project

#: Requests made in all, per store (shared by every operation): CI time is bounded.
EXAMPLES = 150


def _tables(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store."""
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {
            n: [tuple(r) for r in conn.execute(sa.text(f'SELECT * FROM "{n}" ORDER BY 1'))]
            for n in names
        }


def test_fuzzing_the_api_finds_no_server_error_and_no_partial_write(core: Core) -> None:
    engine = sa.create_engine(core.project.url)
    try:
        fuzz(core, engine)
    finally:
        engine.dispose()


def test_fuzzing_the_api_on_postgresql(tmp_path: Path, pg_store_url: str) -> None:
    """PostgreSQL is the stricter store (32-bit ids, no NUL in text): the same fuzz on it."""
    project = Project(tmp_path / "proj")
    project.write_config(endpoint=pg_store_url)
    project.add_users()
    core = Core(project)
    engine = sa.create_engine(pg_store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        fuzz(core, engine)
    finally:
        engine.dispose()
        core.stop()
    assert "internal error" not in core.stderr(), core.stderr()


def fuzz(core: Core, engine: sa.Engine) -> None:
    # objects for the operations on one object to find
    site = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "fuzz"}).json()
    core.call("POST", "/xosapi/v1/coretest/slices", json={"name": "f", "site_id": site["id"]})
    core.call("POST", "/xosapi/v1/core/widgets", json={"note": "f"})
    assert {"Site", "Slice", "Widget", "xos_runtime_users"} <= set(_tables(engine))
    document = core.call("GET", "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    strategies = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.endswith("/changes") or (
            op.path.endswith("/events/{topic}") and op.method.upper() == "GET"
        ):
            continue  # long polls: their waits are tested in test_feed, test_events_over_core
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(op.as_strategy(generation_mode=mode))
            if "{id}" in op.path and op.method.upper() != "DELETE":
                strategies.append(op.as_strategy(generation_mode=mode, path_parameters={"id": 1}))
    seen: dict[int, int] = {}

    @given(case=st.one_of(strategies), user=st.sampled_from(sorted(PASSWORDS)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case, user: str) -> None:
        before = _tables(engine)
        response = case.call(base_url=core.url, auth=(user, PASSWORDS[user]), timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400:
            assert response.json()["error"], response.text
            assert _tables(engine) == before, case.as_curl_command()

    run()
    assert any(200 <= code < 300 for code in seen), seen  # the fuzzer got through, too
    assert any(400 <= code < 500 for code in seen), seen
