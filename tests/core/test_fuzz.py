"""A property-based fuzz test of the core's API: schemathesis against `/openapi.json`.

Valid and invalid requests of every operation of every model, a bounded number of them,
against a real server process. No answer is a 5xx, and a refused write changes nothing
(every table of the store, read before and after, is the same).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import hypothesis.strategies as st
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from .conftest import PASSWORDS, Core

#: Requests made in all (shared by every operation): CI time is bounded.
EXAMPLES = 200


def _tables(path: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1').fetchall() for n in names}
    finally:
        conn.close()


def test_fuzzing_the_api_finds_no_server_error_and_no_partial_write(core: Core) -> None:
    # objects for the operations on one object to find
    site = core.call("POST", "/xosapi/v1/coretest/sites", json={"name": "fuzz"}).json()
    core.call("POST", "/xosapi/v1/coretest/slices", json={"name": "f", "site_id": site["id"]})
    core.call("POST", "/xosapi/v1/core/widgets", json={"note": "f"})
    document = core.call("GET", "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    strategies = []
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.endswith("/changes"):
            continue  # a long poll: its waits are tested in test_feed
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(op.as_strategy(generation_mode=mode))
            if "{id}" in op.path and op.method.upper() != "DELETE":
                strategies.append(op.as_strategy(generation_mode=mode, path_parameters={"id": 1}))
    store = str(core.project.store)
    seen: dict[int, int] = {}

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        before = _tables(store)
        user = "vsg" if case.operation.method.upper() == "PUT" and len(seen) % 2 else "alice"
        response = case.call(base_url=core.url, auth=(user, PASSWORDS[user]), timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        if response.status_code >= 400:
            assert response.json()["error"], response.text
            assert _tables(store) == before, case.as_curl_command()

    run()
    assert any(200 <= code < 300 for code in seen), seen  # the fuzzer got through, too
    assert any(400 <= code < 500 for code in seen), seen
