"""Loading an XOS service as XOS does: its config file as is, `xosconfig`, `multistructlog`,
the `*_dir` parents on sys.path, py2-only files, and the adapted step classes."""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from xos_runtime.exceptions import ConfigError, PluginError
from xos_runtime.host import Runtime

from .conftest import with_plugins

pytestmark = pytest.mark.usefixtures("compat")


def test_xos_config_keys_are_accepted_and_a_typo_is_still_an_error(
    service: Path, log_messages: list[tuple[str, str]]
) -> None:
    config = service / "config.yaml"
    config.write_text(config.read_text() + "wrappers:\n  - wrappers.widget\n")
    rt = Runtime.load(config)
    try:
        assert rt.settings.accessor.kind == "grpcapi"
        assert {"WidgetService", "ServiceInstanceLink"} <= set(rt.models.names())
    finally:
        rt.close()
    debug = [m for level, m in log_messages if level == "DEBUG"]
    for key in ("required_models", "sys_dir", "desired_state", "kafka_bootstrap_servers"):
        assert any(f"{key}: legacy XOS key" in m for m in debug), key
    assert any("wrappers: legacy XOS key" in m for m in debug)

    config.write_text(config.read_text() + "wraperz: []\n")
    with pytest.raises(ConfigError, match="wraperz: unknown key"):
        Runtime.load(config)


def test_xosconfig_reads_the_service_config(service: Path, tmp_path: Path) -> None:
    from xosconfig import Config

    Runtime.load(service / "config.yaml").close()

    assert Config().get_config_file() == str(service / "config.yaml")
    logging = Config().get("logging")
    assert logging["version"] == 1 and "console" in logging["handlers"]
    assert Config.get("accessor.kind") == "grpcapi"
    assert Config.get("accessor.username") == "admin@opencord.org"
    assert Config.get("kafka_bootstrap_servers") == ["cord-kafka:9092"]
    assert Config.get("no_such_key") is None

    other = tmp_path / "other.yaml"
    other.write_text("name: other\nlogging: {version: 1}\n")
    Config.init(str(other), "synchronizer-config-schema.yaml")
    assert Config.get("name") == "other"
    assert Config.get("kafka_bootstrap_servers") == ["cord-kafka:9092"]  # XOS default


def test_create_logger_is_structlog_style(log_messages: list[tuple[str, str]]) -> None:
    from multistructlog import create_logger

    log = create_logger({"version": 1})
    log.info("json {not a format}", port_id="3")
    log.warn("deprecated alias %s", "warn")
    log.new(step="s").debug("bound")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed", obj="x")

    assert ("INFO", "json {not a format} port_id='3'") in log_messages
    assert ("WARNING", "deprecated alias warn") in log_messages
    assert ("DEBUG", "bound step='s'") in log_messages
    assert ("ERROR", "it failed obj='x'") in log_messages


def test_dir_parents_go_first_on_sys_path_and_long_exists(service: Path) -> None:
    Runtime.load(service / "config.yaml").close()
    assert sys.path[0] == os.path.realpath(service)
    assert builtins.long is int  # type: ignore[attr-defined]
    import helpers  # the service root's module, by bare name

    assert Path(helpers.__file__).parent == service


def test_a_py2_only_file_fails_with_one_line_and_skip_broken_runs_the_rest(
    service: Path,
) -> None:
    legacy = service / "steps" / "sync_legacy.py"
    legacy.write_text('print "a Python 2 statement"\n')
    with pytest.raises(PluginError) as info:
        Runtime.load(service / "config.yaml")
    lines = [line for line in str(info.value).splitlines() if "sync_legacy.py" in line]
    assert len(lines) == 1 and str(legacy) in lines[0]

    with_plugins(service, "skip_broken: true")
    rt = Runtime.load(service / "config.yaml")
    try:
        names = {info.name for info in rt.plugins.table}
        assert {"SyncWidgetServiceInstance", "WidgetServiceInstancePolicy"} <= names
    finally:
        rt.close()


def test_xos_step_signatures_are_adapted() -> None:
    from loguru import logger
    from xossynchronizer.event_steps.eventstep import EventStep
    from xossynchronizer.pull_steps.pullstep import PullStep
    from xossynchronizer.steps.syncstep import DeferredException, SyncStep

    import xos_runtime

    class Pull(PullStep):
        def __init__(self, model_accessor: Any) -> None:
            super().__init__(model_accessor=model_accessor)

    pull = Pull(model_accessor="acc", log=logger)  # what the runtime passes
    assert pull.model_accessor == "acc"
    assert hasattr(pull.log, "warn")

    class Sync(SyncStep):
        provides = ["WidgetServiceInstance"]

        def fetch_pending(self, deletion: bool = False) -> Any:
            return ["deleted" if deletion else "live"]

    assert Sync.observed_model_names() == ["WidgetServiceInstance"]
    assert Sync(model_accessor="acc").fetch_pending(deleted=True) == ["deleted"]
    assert DeferredException is xos_runtime.DeferredException

    seen: list[Any] = []

    class Events(EventStep):
        topics = ["t"]

        def process_event(self, event: Any) -> None:
            seen.append(event.value)

    Events(model_accessor="acc").process_event(
        xos_runtime.Event(topic="t", key=b"k", value=b'{"a": 1}')
    )
    assert seen == ['{"a": 1}']


def test_pre_4_0_import_paths_are_aliases() -> None:
    from synchronizers.new_base import modelaccessor, policy, pullstep, syncstep
    from synchronizers.new_base.eventstep import EventStep
    from xossynchronizer.event_steps import eventstep
    from xossynchronizer.model_policies.policy import Policy
    from xossynchronizer.pull_steps.pullstep import PullStep
    from xossynchronizer.steps.syncstep import SyncStep

    assert syncstep.SyncStep is SyncStep
    assert EventStep is eventstep.EventStep
    assert policy.Policy is Policy and pullstep.PullStep is PullStep
    assert modelaccessor.ServiceInstance.__name__ == "ServiceInstance"


def test_the_exceptions_module_star_imports_under_both_paths() -> None:
    """fabric-crossconnect's policy does `from synchronizers.new_base.exceptions import *`."""
    from xossynchronizer import exceptions

    namespace: dict[str, Any] = {}
    exec("from synchronizers.new_base.exceptions import *", namespace)
    assert namespace["SynchronizerException"] is exceptions.SynchronizerException
    assert issubclass(namespace["SynchronizerProgrammingError"], exceptions.SynchronizerException)
    assert issubclass(namespace["SynchronizerConfigurationError"], exceptions.SynchronizerException)


def test_a_dict_config_naming_only_multistructlog_is_read_as_xos_read_it() -> None:
    from xos_runtime_xos_compat.logsetup import as_multistructlog_config

    published = {
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"multistructlog": {"handlers": ["console"], "level": "DEBUG"}},
    }
    applied = as_multistructlog_config(published)

    assert applied["loggers"][""] == {"handlers": ["console"], "level": "NOTSET", "propagate": True}
    assert "multistructlog" not in applied["loggers"]
    assert applied["handlers"]["console"]["formatter"] == "structured"
    assert applied["disable_existing_loggers"] is False
    assert "formatter" not in published["handlers"]["console"]  # the caller's dict is a copy
    own_root = {**published, "loggers": {"": {"handlers": ["console"], "level": "INFO"}}}
    assert as_multistructlog_config(own_root)["loggers"] == own_root["loggers"]
