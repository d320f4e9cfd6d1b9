"""configure_logging: text and JSON lines, file sink and rotation, stdlib routing, dictConfig."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from xos_runtime.config import LoggingSettings, configure_logging
from xos_runtime.config.logging import InterceptHandler, _root_level

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| (?P<level>\w+) +\| (?P<name>\S+) \| "
    r"(?P<rest>.*)$"
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put loguru and the stdlib root logger back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logger.remove()
    logger.add(sys.stderr)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_text_lines_with_extras(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(file=str(log)), stream=io.StringIO())
    logger.bind(step="SyncFoo", model="Foo", id=42).info("synced {}", "it")
    logger.debug("not written at INFO")
    [line] = lines(log)
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["level"] == "INFO"
    assert match["name"] == __name__
    assert match["rest"] == "synced it step=SyncFoo model=Foo id=42"


def test_text_has_no_colour_codes_in_file_and_shows_tracebacks(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(file=str(log)), stream=io.StringIO())
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        logger.exception("step failed")
    text = log.read_text()
    assert "\x1b[" not in text
    assert "step failed" in text
    assert "RuntimeError: kaboom" in text


def test_braces_in_extras_and_messages_are_safe(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(file=str(log)), stream=io.StringIO())
    # loguru formats a message only when it is given arguments
    logger.bind(step="{weird}", **{"not an identifier": 1}).info("a {literal} brace")
    [line] = lines(log)
    assert line.endswith("a {literal} brace step={weird}")


def test_json_lines(tmp_path: Path) -> None:
    log = tmp_path / "run.json"
    configure_logging(LoggingSettings(format="json", file=str(log)), stream=io.StringIO())
    logger.bind(step="SyncFoo", id=7, level="clash").warning("slow")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("failed")
    first, second = (json.loads(line) for line in lines(log))
    assert first["level"] == "WARNING"
    assert first["message"] == "slow"
    assert first["name"] == __name__
    assert first["step"] == "SyncFoo" and first["id"] == 7
    assert first["extra.level"] == "clash"  # an extra never hides a standard field
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$", first["time"])
    assert not any(key.startswith("_") for key in first)
    assert second["level"] == "ERROR"
    assert "ZeroDivisionError" in second["exception"]
    assert ", " not in log.read_text().splitlines()[0]  # compact


def test_json_on_the_stream() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json"), stream=stream)
    logger.info("hello", obj=object())  # not JSON-serialisable: written as its str()
    record = json.loads(stream.getvalue())
    assert record["message"] == "hello" and record["obj"].startswith("<object")


def test_level_filters_both_sinks(tmp_path: Path) -> None:
    log, stream = tmp_path / "run.log", io.StringIO()
    configure_logging(LoggingSettings(level="warning", file=str(log)), stream=stream)
    logger.info("quiet")
    logger.warning("loud")
    assert [TEXT_LINE.match(line)["rest"] for line in lines(log)] == ["loud"]  # type: ignore[index]
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()


def test_trace_level(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(level="TRACE", file=str(log)), stream=io.StringIO())
    logger.trace("fine detail")
    logging.getLogger("lib").debug("stdlib debug")
    assert len(lines(log)) == 2
    assert logging.getLogger().level == 5


def test_stdlib_records_are_routed(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(file=str(log)), stream=io.StringIO())
    logging.getLogger("kafka.conn").warning("broker %s {down}", "k1")
    logging.getLogger("sqlalchemy.engine").debug("below INFO, dropped")
    logging.getLogger("my_plugin.backend").info("loaded")
    parsed = [TEXT_LINE.match(line) for line in lines(log)]
    assert [(m["level"], m["name"], m["rest"]) for m in parsed if m] == [
        ("WARNING", "kafka.conn", "broker k1 {down}"),
        ("INFO", "my_plugin.backend", "loaded"),
    ]
    root = logging.getLogger()
    assert [type(h) for h in root.handlers] == [InterceptHandler]
    assert root.level == logging.INFO


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_libraries_log_at_warning(tmp_path: Path, level: str) -> None:
    """A library's INFO chatter is not the operator's business; a plugin's INFO is.
    (kafka-python's records are passed on at DEBUG while a Kafka bus is open: see
    `tests/engines/test_events.py`.)"""
    log = tmp_path / "run.log"
    configure_logging(LoggingSettings(file=str(log), level=level), stream=io.StringIO())
    logging.getLogger("sqlalchemy.engine.Engine").info("BEGIN (implicit)")
    logging.getLogger("urllib3.connectionpool").warning("retrying")
    logging.getLogger("stevedore.extension").info("found extension")
    logging.getLogger("my_plugin").info("plugin says hello")
    parsed = [TEXT_LINE.match(line) for line in lines(log)]
    assert [(m["name"], m["rest"]) for m in parsed if m] == [
        ("urllib3.connectionpool", "retrying"),
        ("my_plugin", "plugin says hello"),
    ]


def test_stdlib_exception_and_custom_level(tmp_path: Path) -> None:
    log = tmp_path / "run.json"
    configure_logging(LoggingSettings(format="json", file=str(log)), stream=io.StringIO())
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("lib").exception("lib failed")
    logging.getLogger("lib").log(35, "between warning and error")
    first, second = (json.loads(line) for line in lines(log))
    assert first["name"] == "lib" and "KeyError" in first["exception"]
    assert second["level"] == "Level 35"


def test_stdlib_caller_location(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json"), stream=stream)
    logger.remove()
    seen: list[dict[str, Any]] = []
    logger.add(lambda m: seen.append(m.record), format="{message}")  # type: ignore[arg-type]
    logging.getLogger("lib").warning("where")
    assert seen[0]["file"].name == Path(__file__).name
    assert seen[0]["function"] == "test_stdlib_caller_location"


def test_idempotent(tmp_path: Path) -> None:
    log, stream = tmp_path / "run.log", io.StringIO()
    settings = LoggingSettings(file=str(log))
    configure_logging(settings, stream=stream)
    configure_logging(settings, stream=stream)
    logger.info("once")
    logging.getLogger("lib").info("once too")
    assert len(lines(log)) == 2
    assert stream.getvalue().count("once") == 2
    assert len(logging.getLogger().handlers) == 1


def test_reconfigure_replaces_sinks(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    configure_logging(LoggingSettings(file=str(first)), stream=io.StringIO())
    configure_logging(LoggingSettings(file=str(second)), stream=io.StringIO())
    logger.info("to b")
    assert not first.exists() or first.read_text() == ""
    assert len(lines(second)) == 1


def test_file_folder_is_created_and_rotated(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    configure_logging(LoggingSettings(file=str(log), rotation="1 KB"), stream=io.StringIO())
    for i in range(100):
        logger.info("line {} {}", i, "x" * 50)
    logger.remove()  # close the file
    files = list((tmp_path / "logs").iterdir())
    assert len(files) > 1
    assert all(f.stat().st_size <= 1024 + 200 for f in files)


def test_stream_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings())
    logger.info("to stderr")
    captured = capsys.readouterr()
    assert "to stderr" in captured.err and captured.out == ""


# --- dictConfig -------------------------------------------------------------------------------


XOS_DICT_CONFIG: dict[str, Any] = {
    "version": 1,
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "file": {"class": "multistructlog.handlers.RotatingFileHandler", "filename": "/x.log"},
    },
    "loggers": {"": {"handlers": ["console", "file"], "level": "DEBUG"}},
}


def test_dict_config_that_cannot_be_applied_falls_back(tmp_path: Path) -> None:
    log, stream = tmp_path / "run.log", io.StringIO()
    configure_logging(
        LoggingSettings(level="ERROR", file=str(log), dict_config=XOS_DICT_CONFIG), stream=stream
    )
    logger.debug("debug is on: the dictConfig's root level wins")
    logging.getLogger("lib").debug("stdlib too")
    parsed = [TEXT_LINE.match(line) for line in lines(log)]
    assert [m["level"] for m in parsed if m] == ["WARNING", "DEBUG", "DEBUG"]
    assert "logging.dict_config could not be applied" in lines(log)[0]
    assert "level DEBUG" in lines(log)[0]
    assert [type(h) for h in logging.getLogger().handlers] == [InterceptHandler]


def test_dict_config_fallback_without_root_level(tmp_path: Path) -> None:
    stream = io.StringIO()
    broken = {"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}
    configure_logging(LoggingSettings(level="WARNING", dict_config=broken), stream=stream)
    configure_logging(LoggingSettings(level="WARNING", dict_config=broken), stream=stream)
    logger.info("hidden")
    assert stream.getvalue().count("could not be applied") == 2
    assert "level WARNING" in stream.getvalue() and "hidden" not in stream.getvalue()


def test_dict_config_applied_receives_loguru_records(tmp_path: Path) -> None:
    out = tmp_path / "std.log"
    dict_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(out), "formatter": "plain"}
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }
    stream = io.StringIO()
    configure_logging(LoggingSettings(dict_config=dict_config), stream=stream)
    try:
        logger.info("from loguru")
        logger.debug("below the root level")
        logging.getLogger("lib").warning("from stdlib")
    finally:
        for handler in list(logging.getLogger().handlers):
            handler.close()
    assert out.read_text().splitlines() == [
        f"INFO {__name__} from loguru",
        "WARNING lib from stdlib",
    ]
    assert stream.getvalue() == ""  # the dictConfig's handlers replace the runtime's sinks


def test_dict_config_with_intercept_handler_does_not_loop(tmp_path: Path) -> None:
    dict_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"loguru": {"()": InterceptHandler}},
        "root": {"level": "INFO", "handlers": ["loguru"]},
    }
    configure_logging(LoggingSettings(dict_config=dict_config), stream=io.StringIO())
    logger.info("no endless loop")
    logging.getLogger("lib").info("nor here")


@pytest.mark.parametrize(
    ("dict_config", "level"),
    [
        ({"root": {"level": "debug"}}, "DEBUG"),
        ({"root": {"level": "WARN"}}, "WARNING"),
        ({"root": {"level": logging.ERROR}}, "ERROR"),
        ({"loggers": {"": {"level": "CRITICAL"}}}, "CRITICAL"),
        ({"root": {"level": "NOTSET"}}, None),
        ({"root": {"handlers": []}}, None),
        ({"loggers": {"x": {"level": "DEBUG"}}}, None),
        ({"loggers": []}, None),
        ({}, None),
    ],
)
def test_root_level_of_a_dict_config(dict_config: dict[str, Any], level: str | None) -> None:
    assert _root_level(dict_config) == level
