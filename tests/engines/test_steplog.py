"""A step's logger is bound to its call, and only made when the step logs."""

from __future__ import annotations

from typing import Any

from loguru import logger

from xos_runtime.engines.steplog import lazy_log


def test_binds_on_first_use_and_logs_with_the_call_s_fields() -> None:
    records: list[dict[str, Any]] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO", format="{message}")
    try:
        log = lazy_log(logger.bind(engine="sync"), step="SyncSite", model="Site", id=7)
        assert isinstance(log, type(logger))  # a loguru logger like any other
        assert "_options" not in vars(log)  # nothing bound yet
        log.info("pushing {}", "east")
        log.opt(depth=0).warning("again")
    finally:
        logger.remove(sink)
    assert [r["message"] for r in records] == ["pushing east", "again"]
    assert all(
        r["extra"] == {"engine": "sync", "step": "SyncSite", "model": "Site", "id": 7}
        for r in records
    )
    assert records[0]["function"] == "test_binds_on_first_use_and_logs_with_the_call_s_fields"
