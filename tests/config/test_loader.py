"""Loading config files: every kind of error, path resolution, falsy values, XOS leftovers."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from xos_runtime.config import Settings, load_config, settings_from_dict
from xos_runtime.exceptions import ConfigError

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteConfig:
    """Write a config file (dedented) into tmp_path/etc and return its path."""
    folder = tmp_path / "etc"
    folder.mkdir()

    def _write(text: str) -> Path:
        path = folder / "config.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return _write


def error_of(path: Path | str | None = None, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return info.value


def dict_error(data: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data, **kwargs)
    return info.value


# --- finding and reading the file -------------------------------------------------------------


def test_minimal_file(write: WriteConfig) -> None:
    path = write("name: svc\n")
    s = load_config(path)
    assert s.name == "svc"
    assert s.source == str(path)
    assert s.base_dir == str(path.parent)
    assert s.accessor.endpoint == f"sqlite:///{path.parent}/svc.db"


def test_accepts_str_and_pathlike(write: WriteConfig) -> None:
    path = write("name: svc\n")
    assert load_config(str(path)) == load_config(path)


def test_env_var_names_the_file(write: WriteConfig) -> None:
    path = write("name: from-env\n")
    assert load_config(environ={"XOS_CONFIG_FILE": str(path)}).name == "from-env"


def test_explicit_path_wins_over_env(write: WriteConfig, tmp_path: Path) -> None:
    path = write("name: explicit\n")
    env = {"XOS_CONFIG_FILE": str(tmp_path / "nope.yaml")}
    assert load_config(path, environ=env).name == "explicit"


def test_env_var_from_os_environ(write: WriteConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("name: os-env\n")
    monkeypatch.setenv("XOS_CONFIG_FILE", str(path))
    assert load_config().name == "os-env"


@pytest.mark.parametrize("environ", [{}, {"XOS_CONFIG_FILE": ""}])
def test_no_file_at_all(environ: dict[str, str]) -> None:
    err = error_of(environ=environ)
    assert str(err) == "no configuration file: pass -C FILE or set XOS_CONFIG_FILE"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    err = error_of(path)
    assert err.file == str(path)
    assert str(err) == f"{path}: cannot read configuration file: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    err = error_of(tmp_path)
    assert str(err).startswith(f"{tmp_path}: cannot read configuration file")


def test_yaml_syntax_error_has_line_and_column(write: WriteConfig) -> None:
    path = write(
        """\
        name: svc
        sync:
          workers: [1, 2
        """
    )
    err = error_of(path)
    assert str(err).startswith(f"{path}:4:1: invalid YAML: ")
    assert err.file == f"{path}:4:1"


def test_yaml_bad_indentation(write: WriteConfig) -> None:
    path = write("name: svc\n  sync: 1\n")
    assert str(error_of(path)).startswith(f"{path}:2:")


def test_duplicate_key_is_an_error(write: WriteConfig) -> None:
    path = write("name: a\nsync:\n  workers: 2\n  workers: 3\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:4:3: invalid YAML: ")
    assert "duplicate key 'workers'" in str(err)


def test_yaml_tags_are_not_executed(write: WriteConfig) -> None:
    path = write("name: !!python/object/apply:os.getcwd []\n")
    assert "invalid YAML" in str(error_of(path))


def test_empty_file_misses_name(write: WriteConfig) -> None:
    path = write("")
    assert str(error_of(path)) == f"{path}: name: required key is missing"


def test_top_level_must_be_a_mapping(write: WriteConfig) -> None:
    path = write("- name: svc\n")
    assert str(error_of(path)) == (
        f"{path}: expected a mapping of keys at the top level, got [{{'name': 'svc'}}] (list)"
    )


# --- required, unknown, types, ranges ---------------------------------------------------------


def test_missing_name(write: WriteConfig) -> None:
    path = write("sync: {workers: 2}\n")
    err = error_of(path)
    assert (err.file, err.key, err.message) == (str(path), "name", "required key is missing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: ''", "name: must not be empty"),
        ("name: 3", "name: expected a string, got 3 (integer)"),
        ("name: null", "name: required key is missing"),
    ],
)
def test_bad_name(write: WriteConfig, text: str, expected: str) -> None:
    path = write(text)
    assert str(error_of(path)) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("name: a\nstep_dir: x", "step_dir", "unknown key; did you mean 'steps_dir'?"),
        ("name: a\nsync:\n  backof: {}", "sync.backof", "unknown key; did you mean 'backoff'?"),
        (
            "name: a\nsync:\n  backoff:\n    jiter: 0",
            "sync.backoff.jiter",
            "unknown key; did you mean 'jitter'?",
        ),
        (
            "name: a\nrequired_model: []",
            "required_model",
            "unknown key; did you mean 'required_models'?",
        ),
        (
            "name: a\nplugins:\n  zzz: 1",
            "plugins.zzz",
            "unknown key (expected one of: skip_broken, disabled, enabled)",
        ),
        (
            "name: a\naccessor:\n  endpoint: sqlite://\n  pasword: x",
            "accessor.pasword",
            "unknown key; did you mean 'password'?",
        ),
        ("name: a\npull:\n  timout: 1", "pull.timout", "unknown key; did you mean 'timeout'?"),
        # source, base_dir and legacy are not keys of the file
        ("name: a\nbase_dir: /x", "base_dir", "unknown key"),
    ],
)
def test_unknown_keys(write: WriteConfig, text: str, key: str, message: str) -> None:
    path = write(text)
    err = error_of(path)
    assert err.key == key
    assert err.message.startswith(message)
    assert str(err) == f"{path}: {key}: {err.message}"


def test_non_string_key(write: WriteConfig) -> None:
    path = write("name: a\nsync:\n  1: 2\n")
    assert str(error_of(path)) == f"{path}: sync: keys must be strings, got 1 (integer)"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("sync: {workers: true}", "sync.workers", "expected an integer, got true (boolean)"),
        ("sync: {workers: '5'}", "sync.workers", "expected an integer, got '5' (string)"),
        ("sync: {workers: 2.5}", "sync.workers", "expected an integer, got 2.5 (number)"),
        ("sync: {timeout: '5'}", "sync.timeout", "expected a number, got '5' (string)"),
        ("sync: {timeout: false}", "sync.timeout", "expected a number, got false (boolean)"),
        ("pull: {timeout: '5'}", "pull.timeout", "expected a number, got '5' (string)"),
        ("pull: {timeout: true}", "pull.timeout", "expected a number, got true (boolean)"),
        ("pull: 5", "pull", "expected a mapping, got 5 (integer)"),
        ("sync: {poll_interval: [1]}", "sync.poll_interval", "expected a number, got [1] (list)"),
        ("sync: {poll_interval: .nan}", "sync.poll_interval", "expected a finite number"),
        ("sync: 5", "sync", "expected a mapping, got 5 (integer)"),
        ("sync: {backoff: []}", "sync.backoff", "expected a mapping, got [] (list)"),
        ("plugins: {skip_broken: 'no'}", "plugins.skip_broken", "expected a boolean"),
        ("plugins: {skip_broken: 0}", "plugins.skip_broken", "expected a boolean"),
        ("plugins: {disabled: x}", "plugins.disabled", "expected a list of strings"),
        ("plugins: {disabled: [a, 2]}", "plugins.disabled[1]", "expected a string, got 2"),
        ("models_dir: [1]", "models_dir[0]", "expected a string, got 1 (integer)"),
        ("models_dir: {a: 1}", "models_dir", "expected a list of strings"),
        (
            "event_bus: {kind: 1}",
            "event_bus.kind",
            "expected one of 'store', 'memory', 'kafka', got 1",
        ),
        ("logging: {level: 10}", "logging.level", "expected a string, got 10 (integer)"),
        ("logging: debug", "logging", "expected a mapping, got 'debug' (string)"),
        ("logging: {dict_config: [1]}", "logging.dict_config", "expected a mapping"),
        ("accessor: {endpoint: 5}", "accessor.endpoint", "expected a string, got 5"),
        ("core_version: 2.2", "core_version", "expected a string, got 2.2 (number)"),
    ],
)
def test_wrong_types(write: WriteConfig, text: str, key: str, message: str) -> None:
    path = write(f"name: a\n{text}\n")
    err = error_of(path)
    assert (err.file, err.key) == (str(path), key)
    assert err.message.startswith(message), err.message


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("sync: {workers: 0}", "sync.workers", "must be >= 1, got 0"),
        ("sync: {timeout: 0}", "sync.timeout", "must be > 0, got 0.0"),
        ("sync: {poll_interval: -1}", "sync.poll_interval", "must be > 0, got -1.0"),
        ("sync: {backoff: {jitter: 1.5}}", "sync.backoff.jitter", "must be <= 1, got 1.5"),
        ("sync: {backoff: {factor: 0.5}}", "sync.backoff.factor", "must be >= 1, got 0.5"),
        ("sync: {backoff: {initial: 0}}", "sync.backoff.initial", "must be > 0, got 0.0"),
        (
            "sync: {backoff: {initial: 10, max: 5}}",
            "sync.backoff.max",
            "must be >= initial (10), got 5",
        ),
        ("policies: {workers: -2}", "policies.workers", "must be >= 1, got -2"),
        ("pull: {timeout: 0}", "pull.timeout", "must be > 0, got 0.0"),
        ("pull: {timeout: -3}", "pull.timeout", "must be > 0, got -3.0"),
        ("policies: {backoff: {max: 0}}", "policies.backoff.max", "must be > 0"),
        ("logging: {level: chatty}", "logging.level", "expected one of 'TRACE'"),
        ("logging: {format: yaml}", "logging.format", "expected one of 'text', 'json'"),
        ("logging: {rotation: sometimes}", "logging.rotation", "invalid rotation 'sometimes'"),
        ("event_bus: {kind: kafak}", "event_bus.kind", "did you mean 'kafka'?"),
    ],
)
def test_out_of_range(write: WriteConfig, text: str, key: str, message: str) -> None:
    path = write(f"name: a\n{text}\n")
    err = error_of(path)
    assert (err.file, err.key) == (str(path), key)
    assert message in err.message, err.message


def test_first_error_in_declaration_order(write: WriteConfig) -> None:
    path = write("name: a\nsync: {workers: 0, timeout: -1}\npolicies: {workers: 0}\n")
    assert error_of(path).key == "sync.workers"


def test_unknown_keys_reported_before_bad_values(write: WriteConfig) -> None:
    path = write("name: a\nsync: {workers: 0, wrokers: 1}\n")
    assert error_of(path).key == "sync.wrokers"


def test_ints_accepted_for_floats(write: WriteConfig) -> None:
    s = load_config(write("name: a\nsync: {timeout: 5, poll_interval: 1}\n"))
    assert s.sync.timeout == 5.0 and isinstance(s.sync.timeout, float)
    assert isinstance(s.sync.poll_interval, float)


def test_pull_timeout(write: WriteConfig) -> None:
    assert load_config(write("name: a\n")).pull.timeout is None
    assert load_config(write("name: a\npull: {timeout: null}\n")).pull.timeout is None
    s = load_config(write("name: a\npull: {timeout: 2}\n"))
    assert s.pull.timeout == 2.0 and isinstance(s.pull.timeout, float)
    assert load_config(write("name: a\npull: {timeout: 0.25}\n")).pull.timeout == 0.25


# --- values: null, falsy, full file -----------------------------------------------------------


def test_null_means_default(write: WriteConfig) -> None:
    s = load_config(
        write(
            """\
            name: a
            accessor: null
            sync:
              workers: null
              timeout: null
              backoff: null
            logging: ~
            models_dir: null
            plugins: {disabled: null, skip_broken: null}
            """
        )
    )
    defaults = Settings(name="a", base_dir=s.base_dir)
    assert s.sync == defaults.sync
    assert s.logging == defaults.logging
    assert s.plugins == defaults.plugins
    assert s.accessor == defaults.accessor
    assert s.models_dir == []


def test_falsy_values_are_honoured(write: WriteConfig) -> None:
    s = load_config(
        write(
            """\
            name: a
            core_version: ""
            models_dir: []
            accessor: {endpoint: "sqlite://", username: "", password: ""}
            sync:
              backoff: {jitter: 0, factor: 1}
            policies:
              backoff: {jitter: 0.0}
            plugins: {skip_broken: false, disabled: []}
            """
        )
    )
    assert s.core_version == ""
    assert s.models_dir == []
    assert s.accessor.username == "" and s.accessor.password == ""
    assert s.sync.backoff.jitter == 0 and s.sync.backoff.factor == 1
    assert s.policies.backoff.jitter == 0
    assert s.plugins.skip_broken is False and s.plugins.disabled == []


def test_true_and_lists_taken(write: WriteConfig) -> None:
    s = load_config(write("name: a\nplugins: {skip_broken: yes, disabled: [demo, 'x.y:Step']}\n"))
    assert s.plugins.skip_broken is True
    assert s.plugins.disabled == ["demo", "x.y:Step"]


def test_full_file(write: WriteConfig, tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    for d in ("steps", "policies", "pull", "events", "models", "more-models"):
        (etc / d).mkdir()
    (etc / "model-deps").write_text("{}")
    (etc / "secret").write_text("hunter2\nsecond line\n")
    s = load_config(
        write(
            """\
            name: testservice
            core_version: ">=2.2.1"
            accessor:
              endpoint: sqlite:///data/store.db
              username: admin@opencord.org
              password: "@secret"
              kind: grpcapi
            dependency_graph: model-deps
            models_dir: [models, more-models]
            steps_dir: steps
            model_policies_dir: policies
            pull_steps_dir: pull
            event_steps_dir: events
            event_bus: {kind: kafka, endpoint: "kafka-1:9092,kafka-2:9092"}
            logging: {level: debug, format: json, file: logs/run.log, rotation: 10 MB}
            sync:
              workers: 16
              timeout: 30
              poll_interval: 0.5
              backoff: {initial: 2, factor: 3, max: 600, jitter: 0.2}
            policies: {workers: 2, timeout: 10, backoff: {initial: 0.5}}
            plugins: {skip_broken: true, disabled: [broken-plugin]}
            """
        )
    )
    e = str(etc)
    assert s.accessor.endpoint == f"sqlite:///{e}/data/store.db"
    assert s.accessor.username == "admin@opencord.org"
    assert s.accessor.password == "hunter2"
    assert s.accessor.kind == "grpcapi"
    assert s.core_version == ">=2.2.1"
    assert s.dependency_graph == f"{e}/model-deps"
    assert s.models_dir == [f"{e}/models", f"{e}/more-models"]
    assert (s.steps_dir, s.model_policies_dir) == (f"{e}/steps", f"{e}/policies")
    assert (s.pull_steps_dir, s.event_steps_dir) == (f"{e}/pull", f"{e}/events")
    assert s.event_bus.kind == "kafka" and s.event_bus.servers == ["kafka-1:9092", "kafka-2:9092"]
    assert s.logging.level == "DEBUG" and s.logging.format == "json"
    assert s.logging.file == f"{e}/logs/run.log" and s.logging.rotation == "10 MB"
    assert (s.sync.workers, s.sync.timeout, s.sync.poll_interval) == (16, 30.0, 0.5)
    assert s.sync.backoff.max == 600.0 and s.sync.backoff.jitter == 0.2
    assert s.policies.workers == 2 and s.policies.backoff.initial == 0.5
    assert s.policies.backoff.max == 300.0
    assert s.plugins.skip_broken is True and s.plugins.disabled == ["broken-plugin"]
    assert not (etc / "logs").exists()  # the log folder is made when logging starts
    assert {p.name for p in etc.iterdir()} == {
        "config.yaml",
        "steps",
        "policies",
        "pull",
        "events",
        "models",
        "more-models",
        "model-deps",
        "secret",
    }  # checking the rotation wrote nothing


# --- paths ------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    write: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc" / "steps").mkdir()
    (tmp_path / "shared").mkdir()
    path = write("name: a\nsteps_dir: ./steps\nmodels_dir: ../shared\n")
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    s = load_config(os.path.relpath(path))
    assert s.steps_dir == str(tmp_path / "etc" / "steps")
    assert s.models_dir == [str(tmp_path / "shared")]
    assert s.source == str(path) and s.base_dir == str(tmp_path / "etc")


def test_absolute_paths_kept(write: WriteConfig, tmp_path: Path) -> None:
    path = write(f"name: a\nsteps_dir: {tmp_path}\n")
    assert load_config(path).steps_dir == str(tmp_path)


def test_home_is_expanded(
    write: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "steps").mkdir()
    assert load_config(write("name: a\nsteps_dir: ~/steps\n")).steps_dir == str(tmp_path / "steps")


@pytest.mark.parametrize(
    "key", ["steps_dir", "model_policies_dir", "pull_steps_dir", "event_steps_dir"]
)
def test_missing_directory_names_the_key(write: WriteConfig, tmp_path: Path, key: str) -> None:
    path = write(f"name: a\n{key}: nowhere\n")
    missing = tmp_path / "etc" / "nowhere"
    assert str(error_of(path)) == f"{path}: {key}: directory does not exist: '{missing}'"


def test_models_dir_item_missing(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "here").mkdir()
    path = write("name: a\nmodels_dir: [here, gone]\n")
    assert error_of(path).key == "models_dir[1]"


def test_models_dir_single_string(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "models").mkdir()
    s = load_config(write("name: a\nmodels_dir: models\n"))
    assert s.models_dir == [str(tmp_path / "etc" / "models")]


def test_dir_that_is_a_file(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "f").write_text("")
    path = write("name: a\nsteps_dir: f\n")
    assert "not a directory" in error_of(path).message


def test_dependency_graph_must_be_a_file(write: WriteConfig) -> None:
    path = write("name: a\ndependency_graph: deps.json\n")
    err = error_of(path)
    assert err.key == "dependency_graph" and "file does not exist" in err.message


def test_empty_path_is_an_error(write: WriteConfig) -> None:
    err = error_of(write("name: a\nsteps_dir: ''\n"))
    assert err.key == "steps_dir" and err.message.startswith("empty path")


def test_log_file_that_is_a_directory(write: WriteConfig, tmp_path: Path) -> None:
    err = error_of(write(f"name: a\nlogging: {{file: {tmp_path}}}\n"))
    assert err.key == "logging.file" and "is a directory" in err.message


# --- accessor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("sqlite:///x.db", "sqlite:///{etc}/x.db"),
        ("sqlite:///db/x.db?mode=ro", "sqlite:///{etc}/db/x.db?mode=ro"),
        ("sqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://xos:pw@db:5432/xos", "postgresql://xos:pw@db:5432/xos"),
        ("http://xos-core:9000", "http://xos-core:9000"),
        ("https://core.example.org:8443", "https://core.example.org:8443"),
    ],
)
def test_endpoints(write: WriteConfig, tmp_path: Path, endpoint: str, expected: str) -> None:
    s = load_config(write(f"name: a\naccessor: {{endpoint: '{endpoint}'}}\n"))
    assert s.accessor.endpoint == expected.format(etc=tmp_path / "etc")


def test_default_endpoint_when_accessor_has_none(write: WriteConfig, tmp_path: Path) -> None:
    s = load_config(write("name: svc\naccessor: {username: u}\n"))
    assert s.accessor.endpoint == f"sqlite:///{tmp_path / 'etc'}/svc.db"
    assert s.accessor.username == "u"


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("mysql://db/xos", "unknown URL scheme 'mysql'"),
        ("xos-core.cord.lab:50051", "not a store URL: 'xos-core.cord.lab:50051'"),
        ("htps://core", "did you mean 'https'?"),
        ("http:///path", "no host in 'http:///path'"),
    ],
)
def test_bad_endpoint(write: WriteConfig, endpoint: str, message: str) -> None:
    path = write(f"name: a\naccessor: {{endpoint: '{endpoint}'}}\n")
    err = error_of(path)
    assert (err.file, err.key) == (str(path), "accessor.endpoint")
    assert message in err.message


def test_password_file_read_at_load(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "pw").write_text("  s3cret  \nignored\n")
    s = load_config(write("name: a\naccessor: {username: u, password: '@pw'}\n"))
    assert s.accessor.password == "s3cret"


def test_password_file_absolute(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("abs")
    s = load_config(write(f"name: a\naccessor: {{password: '@{tmp_path}/pw'}}\n"))
    assert s.accessor.password == "abs"


def test_password_file_empty_gives_empty_password(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "pw").write_text("")
    assert load_config(write("name: a\naccessor: {password: '@pw'}\n")).accessor.password == ""


def test_password_file_missing(write: WriteConfig, tmp_path: Path) -> None:
    path = write("name: a\naccessor: {username: u, password: '@secrets/pw'}\n")
    err = error_of(path)
    missing = tmp_path / "etc" / "secrets" / "pw"
    assert (err.file, err.key) == (str(path), "accessor.password")
    assert str(err) == (
        f"{path}: accessor.password: cannot read password file '{missing}': "
        "No such file or directory"
    )


def test_password_file_unreadable(write: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "etc" / "pwdir").mkdir()
    err = error_of(write("name: a\naccessor: {password: '@pwdir'}\n"))
    assert err.key == "accessor.password" and "pwdir" in err.message


def test_password_at_alone(write: WriteConfig) -> None:
    assert error_of(write("name: a\naccessor: {password: '@'}\n")).key == "accessor.password"


def test_plain_password_kept(write: WriteConfig) -> None:
    s = load_config(write("name: a\naccessor: {password: 'pl@in'}\n"))
    assert s.accessor.password == "pl@in"


# --- event bus --------------------------------------------------------------------------------


def test_kafka_requires_endpoint(write: WriteConfig) -> None:
    path = write("name: a\nevent_bus: {kind: kafka}\n")
    err = error_of(path)
    assert (err.file, err.key) == (str(path), "event_bus.endpoint")
    assert "required when event_bus.kind is 'kafka'" in err.message


def test_kafka_endpoint_format(write: WriteConfig) -> None:
    err = error_of(write("name: a\nevent_bus: {kind: kafka, endpoint: 'kafka'}\n"))
    assert err.key == "event_bus.endpoint" and "host:port" in err.message


def test_memory_bus_needs_no_endpoint(write: WriteConfig) -> None:
    s = load_config(write("name: a\nevent_bus: {kind: memory}\n"))
    assert s.event_bus.kind == "memory" and s.event_bus.endpoint is None


def test_the_store_bus_is_the_default_and_keeps_messages_a_week(write: WriteConfig) -> None:
    s = load_config(write("name: a\n"))
    assert s.event_bus.kind == "store" and s.event_bus.retention == 7 * 24 * 3600
    s = load_config(write("name: a\nevent_bus: {kind: store, retention: 60}\n"))
    assert s.event_bus.retention == 60.0


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("event_bus: {retention: 0}", "event_bus.retention", "must be > 0"),
        ("event_bus: {retention: 1 day}", "event_bus.retention", "number"),
        ("event_bus: {kind: broker}", "event_bus.kind", "'store', 'memory', 'kafka'"),
        ("event_bus: {retension: 5}", "event_bus.retension", "did you mean 'retention'"),
    ],
)
def test_bad_event_bus_values_name_the_key(
    write: WriteConfig, text: str, key: str, says: str
) -> None:
    err = error_of(write(f"name: a\n{text}\n"))
    assert err.key == key and says in err.message


# --- logging section --------------------------------------------------------------------------


XOS_LOGGING = """\
name: a
logging:
  version: 1
  handlers:
    console:
      class: "logging.StreamHandler"
    file:
      class: "logging.handlers.RotatingFileHandler"
      filename: "/var/log/xos.log"
      maxBytes: 10485760
      backupCount: 5
  loggers:
    "":
      handlers: [console, file]
      level: DEBUG
"""


def test_xos_dict_config_is_accepted(write: WriteConfig) -> None:
    s = load_config(write(XOS_LOGGING))
    assert s.logging.dict_config is not None
    assert s.logging.dict_config["version"] == 1
    assert s.logging.dict_config["loggers"][""]["level"] == "DEBUG"
    assert (s.logging.level, s.logging.format, s.logging.file) == ("INFO", "text", None)


def test_dict_config_needs_version_1(write: WriteConfig) -> None:
    path = write("name: a\nlogging: {version: 2, handlers: {}}\n")
    err = error_of(path)
    assert (
        str(err)
        == f"{path}: logging.version: a logging dictConfig needs 'version: 1', got 2 (integer)"
    )


def test_dict_config_as_a_key(write: WriteConfig) -> None:
    s = load_config(write("name: a\nlogging: {level: warning, dict_config: {version: 1}}\n"))
    assert s.logging.dict_config == {"version": 1} and s.logging.level == "WARNING"
    err = error_of(write("name: a\nlogging: {dict_config: {handlers: {}}}\n"))
    assert err.key == "logging.dict_config.version"


# --- legacy XOS keys --------------------------------------------------------------------------


def test_legacy_keys_accepted_and_kept(write: WriteConfig) -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="DEBUG", format="{message}")
    try:
        s = load_config(
            write(
                """\
                name: a
                desired_state: load
                required_models: [Slice, Network]
                wrappers: [xosapi.wrappers.foo]
                kafka_bootstrap_servers: ["cord-kafka:9092"]
                config_dir: /etc/xos/sync
                backoff_disabled: false
                xos_dir: /opt/xos
                proxy_ssh: {enabled: false}
                keep_temp_files: false
                nova: {whatever: 1}
                """
            )
        )
    finally:
        logger.remove(sink)
    assert s.legacy["desired_state"] == "load"
    assert s.legacy["backoff_disabled"] is False
    assert s.legacy["proxy_ssh"] == {"enabled": False}
    assert set(s.legacy) == {
        "desired_state",
        "required_models",
        "wrappers",
        "kafka_bootstrap_servers",
        "config_dir",
        "backoff_disabled",
        "xos_dir",
        "proxy_ssh",
        "keep_temp_files",
        "nova",
    }
    assert any("desired_state: legacy XOS key, ignored" in m for m in messages)


def test_xos_testservice_config(write: WriteConfig, tmp_path: Path) -> None:
    """A config as the XOS testservice ships it (minus the gRPC endpoint) loads."""
    etc = tmp_path / "etc"
    for d in ("models", "steps", "pull_steps", "event_steps", "model_policies"):
        (etc / d).mkdir()
    (etc / "pw").write_text("letmein\n")
    s = load_config(
        write(
            """\
            name: testservice
            core_version: ">=2.2.1"
            required_models:
              - TestserviceService
            dependency_graph: null
            steps_dir: "steps"
            pull_steps_dir: "pull_steps"
            event_steps_dir: "event_steps"
            model_policies_dir: "model_policies"
            models_dir: "models"
            accessor:
              username: xosadmin@opencord.org
              password: "@pw"
              kind: grpcapi
            event_bus:
              endpoint: cord-kafka:9092
              kind: kafka
            logging:
              version: 1
              handlers:
                console:
                  class: logging.StreamHandler
                file:
                  class: logging.handlers.RotatingFileHandler
                  filename: /var/log/xos.log
                  maxBytes: 10485760
                  backupCount: 5
              loggers:
                'multistructlog':
                  handlers:
                      - console
                      - file
                  level: DEBUG
            """
        )
    )
    assert s.name == "testservice" and s.accessor.password == "letmein"
    assert s.legacy == {"required_models": ["TestserviceService"]}


# --- settings_from_dict -----------------------------------------------------------------------


def test_from_dict_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = settings_from_dict({"name": "a"})
    assert s.source is None and s.base_dir == str(tmp_path)
    assert s.accessor.endpoint == f"sqlite:///{tmp_path}/a.db"


def test_from_dict_base_dir_and_source(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    s = settings_from_dict({"name": "a", "steps_dir": "steps"}, base_dir=str(tmp_path))
    assert s.steps_dir == str(tmp_path / "steps") and s.source is None
    s = settings_from_dict({"name": "a", "steps_dir": "steps"}, source=str(tmp_path / "c.yaml"))
    assert s.steps_dir == str(tmp_path / "steps") and s.base_dir == str(tmp_path)


def test_from_dict_errors_name_the_source_if_any() -> None:
    assert (
        str(dict_error({"name": "a", "x": 1}))
        == "x: unknown key (expected one of: "
        + ", ".join(
            [
                "name",
                "accessor",
                "core_version",
                "dependency_graph",
                "models_dir",
                "steps_dir",
                "model_policies_dir",
                "pull_steps_dir",
                "event_steps_dir",
                "event_bus",
                "logging",
                "sync",
                "policies",
                "pull",
                "events",
                "plugins",
                "metrics",
                "core",
            ]
        )
        + ")"
    )
    err = dict_error({"name": "a", "sync": {"workers": 0}}, source="/etc/xos/c.yaml")
    assert str(err) == "/etc/xos/c.yaml: sync.workers: must be >= 1, got 0"


def test_from_dict_does_not_change_its_input() -> None:
    data: dict[str, Any] = {"name": "a", "models_dir": [], "logging": {"version": 1}}
    settings_from_dict(data, base_dir="/")
    assert data == {"name": "a", "models_dir": [], "logging": {"version": 1}}


def test_an_xos_services_container_paths_are_read_next_to_the_config(
    write: WriteConfig, tmp_path: Path
) -> None:
    """An XOS service's config names its folders as its container holds them
    (`/opt/xos/synchronizers/<name>/...`): where they are not, the folders next to the
    config file are used; paths that exist, or are elsewhere, are kept as given."""
    etc = tmp_path / "etc"
    for folder in ("models", "steps", "event_steps"):
        (etc / folder).mkdir(parents=True)
    path = write(
        "name: fabric-crossconnect\n"
        "models_dir: [/opt/xos/synchronizers/fabric-crossconnect/models]\n"
        "steps_dir: /opt/xos/synchronizers/fabric-crossconnect/steps\n"
        "event_steps_dir: /opt/xos/synchronizers/fabric-crossconnect/event_steps\n"
    )
    s = load_config(path)
    assert s.models_dir == [str(etc / "models")]
    assert s.steps_dir == str(etc / "steps")
    assert s.event_steps_dir == str(etc / "event_steps")
    # not next to the config either: the error names the path as written
    missing = write("name: a\nsteps_dir: /opt/xos/synchronizers/a/pull_steps\n")
    assert str(error_of(missing)).endswith(
        "steps_dir: directory does not exist: '/opt/xos/synchronizers/a/pull_steps'"
    )


def test_plugins_enabled_is_a_list_of_names_or_absent(write: WriteConfig) -> None:
    assert load_config(write("name: a\n")).plugins.enabled is None
    s = load_config(write("name: a\nplugins: {enabled: [xos-runtime-demo, SyncSite]}\n"))
    assert s.plugins.enabled == ["xos-runtime-demo", "SyncSite"]
    assert error_of(write("name: a\nplugins: {enabled: demo}\n")).key == "plugins.enabled"
