"""The PostgreSQL change listener tells an outage once, and its end once."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from loguru import logger

from xos_runtime.store.pgnotify import PgListener


def test_an_outage_is_one_warning_and_its_end_one_line(pg_database: str) -> None:
    refusals = [3]  # the database refuses the first three connections (about 3 s)

    def connect() -> Any:
        if refusals[0]:
            refusals[0] -= 1
            raise psycopg.OperationalError("the database is away")
        return psycopg.connect(pg_database, autocommit=True)

    lines: list[tuple[str, str]] = []
    sink = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])))
    listener = PgListener(connect, "xrt_test_outage", lambda _models: None, "token")
    try:
        listener.start(wait=0)
        deadline = time.monotonic() + 20
        while not any("again" in text for _, text in lines):
            if time.monotonic() > deadline:
                pytest.fail(f"the listener never came back: {lines}")
            time.sleep(0.05)
    finally:
        listener.stop()
        logger.remove(sink)
    warnings = [text for level, text in lines if level == "WARNING"]
    assert len(warnings) == 1 and "cannot listen for store changes" in warnings[0]
    assert ("INFO", "listening for store changes again") in lines
