"""The settings classes on their own: defaults, value rules, backoff arithmetic, house style."""

from __future__ import annotations

import ast
import inspect
import os
import sys
from pathlib import Path

import attrs
import pytest

import xos_runtime.config as config
from xos_runtime.config import (
    LEGACY_KEYS,
    AccessorSettings,
    BackoffSettings,
    EventBusSettings,
    EventSettings,
    LoggingSettings,
    PluginSettings,
    PolicySettings,
    PullSettings,
    Settings,
    SyncSettings,
    default_store_url,
)
from xos_runtime.config import settings as settings_module
from xos_runtime.exceptions import ConfigError

SETTINGS_CLASSES = [
    Settings,
    AccessorSettings,
    EventBusSettings,
    LoggingSettings,
    SyncSettings,
    BackoffSettings,
    PolicySettings,
    PullSettings,
    PluginSettings,
]


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_of_every_section() -> None:
    s = Settings(name="svc", base_dir="/srv/xos")
    assert s.source is None
    assert s.accessor == AccessorSettings(endpoint="sqlite:////srv/xos/svc.db")
    assert s.accessor.username is None and s.accessor.password is None
    assert s.accessor.kind is None
    assert s.core_version is None and s.dependency_graph is None
    assert s.models_dir == []
    assert s.steps_dir is None and s.model_policies_dir is None
    assert s.pull_steps_dir is None and s.event_steps_dir is None
    assert s.event_bus == EventBusSettings(kind="store", endpoint=None, retention=7 * 24 * 3600)
    assert s.logging == LoggingSettings(
        level="INFO", format="text", file=None, rotation=None, dict_config=None
    )
    assert s.sync == SyncSettings(workers=8, timeout=None, poll_interval=5.0)
    assert s.policies == PolicySettings(workers=4, timeout=None)
    assert s.pull == PullSettings(timeout=None)
    assert (
        s.sync.backoff
        == s.policies.backoff
        == BackoffSettings(initial=1.0, factor=2.0, max=300.0, jitter=0.1)
    )
    assert s.plugins == PluginSettings(skip_broken=False, disabled=[])
    assert s.events == EventSettings(max_attempts=3, dead_letter_topic=None)
    assert EventSettings(dead_letter_topic="xos.dead-letters_1").dead_letter_topic
    assert s.legacy == {}


def test_base_dir_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(name="svc")
    assert s.base_dir == os.getcwd()
    assert s.accessor.endpoint == default_store_url(os.getcwd(), "svc")


def test_default_store_url_is_absolute_sqlite() -> None:
    assert default_store_url("/a/b", "svc") == "sqlite:////a/b/svc.db"


def test_settings_are_frozen() -> None:
    s = Settings(name="svc")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        s.sync.backoff.initial = 3  # type: ignore[misc]


def test_password_is_hidden_in_repr() -> None:
    acc = AccessorSettings(endpoint="http://core:9000", username="u", password="s3cret")
    assert "s3cret" not in repr(acc)
    assert "'***'" in repr(acc)
    assert "password=None" in repr(AccessorSettings(endpoint="sqlite://"))


def test_legacy_keys_are_the_xos_ones() -> None:
    assert {"desired_state", "required_models", "wrappers", "nova", "feefie"} <= LEGACY_KEYS
    assert "name" not in LEGACY_KEYS and "logging" not in LEGACY_KEYS


# --- value rules on direct construction -------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "key", "fragment"),
    [
        (lambda: SyncSettings(workers=0), "workers", "must be >= 1, got 0"),
        (lambda: SyncSettings(timeout=0), "timeout", "must be > 0"),
        (lambda: SyncSettings(poll_interval=-1.0), "poll_interval", "must be > 0"),
        (lambda: PolicySettings(workers=0), "workers", "must be >= 1"),
        (lambda: PullSettings(timeout=0), "timeout", "must be > 0"),
        (lambda: PullSettings(timeout=-1.5), "timeout", "must be > 0"),
        (lambda: BackoffSettings(initial=0), "initial", "must be > 0"),
        (lambda: BackoffSettings(factor=0.5), "factor", "must be >= 1"),
        (lambda: BackoffSettings(jitter=1.5), "jitter", "must be <= 1"),
        (lambda: BackoffSettings(jitter=-0.1), "jitter", "must be >= 0"),
        (lambda: BackoffSettings(initial=10, max=5), "max", "must be >= initial (10)"),
        (lambda: EventBusSettings(kind="kafka"), "endpoint", "required when"),
        (lambda: EventBusSettings(kind="kafka", endpoint="nohost"), "endpoint", "host:port"),
        (lambda: EventBusSettings(kind="kafka", endpoint="a:1,b"), "endpoint", "host:port"),
        (lambda: EventBusSettings(kind="kafka", endpoint="a:70000"), "endpoint", "host:port"),
        (lambda: EventBusSettings(kind="redis"), "kind", "got 'redis'"),  # type: ignore[arg-type]
        (lambda: LoggingSettings(level="LOUD"), "level", "expected one of 'TRACE'"),
        (lambda: LoggingSettings(format="xml"), "format", "'text', 'json'"),  # type: ignore[arg-type]
        (lambda: LoggingSettings(dict_config={"x": 1}), "dict_config.version", "version: 1"),
        (lambda: AccessorSettings(endpoint="mysql://db"), "endpoint", "unknown URL scheme"),
        (lambda: AccessorSettings(endpoint="core:50051"), "endpoint", "not a store URL"),
        (lambda: AccessorSettings(endpoint="http://"), "endpoint", "no host"),
        (lambda: AccessorSettings(endpoint="sqlite+x:///a"), "endpoint", "unknown URL scheme"),
        (lambda: Settings(name=""), "name", "must not be empty"),
        (lambda: EventSettings(dead_letter_topic=""), "dead_letter_topic", "topic name"),
        (lambda: EventSettings(dead_letter_topic="a b"), "dead_letter_topic", "got 'a b'"),
        (lambda: EventSettings(dead_letter_topic=".."), "dead_letter_topic", "topic name"),
    ],
)
def test_value_rules(build: object, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert info.value.key == key
    assert fragment in info.value.message
    assert info.value.file is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "sqlite://",
        "sqlite:///relative.db",
        "sqlite:////abs/x.db",
        "postgresql://u@db:5432/xos",
        "postgresql+psycopg://db/xos",
        "http://core:9000",
        "https://core.example.org",
    ],
)
def test_store_urls_accepted(endpoint: str) -> None:
    assert AccessorSettings(endpoint=endpoint).endpoint == endpoint


def test_kafka_endpoint_and_servers() -> None:
    bus = EventBusSettings(kind="kafka", endpoint="k1:9092, k2:9093,[::1]:9094")
    assert bus.servers == ["k1:9092", "k2:9093", "[::1]:9094"]
    assert EventBusSettings().servers == []
    # the endpoint is not read (nor checked) for the memory bus
    assert EventBusSettings(kind="memory", endpoint="whatever").kind == "memory"


def test_level_is_case_insensitive() -> None:
    assert LoggingSettings(level="warning").level == "WARNING"
    assert LoggingSettings(level="Trace").level == "TRACE"


def test_falsy_values_kept() -> None:
    b = BackoffSettings(jitter=0, factor=1)
    assert b.jitter == 0 and b.factor == 1
    assert PluginSettings(skip_broken=False, disabled=[]).disabled == []


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_delay_grows_and_caps() -> None:
    b = BackoffSettings(initial=1.0, factor=2.0, max=10.0, jitter=0.0)
    assert [b.delay(n, 0.5) for n in range(0, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_delay_jitter_bounds() -> None:
    b = BackoffSettings(initial=4.0, factor=2.0, max=100.0, jitter=0.25)
    assert b.delay(1, 0.0) == pytest.approx(3.0)
    assert b.delay(1, 0.5) == pytest.approx(4.0)
    assert b.delay(1, 1.0) == pytest.approx(5.0)
    assert b.delay(1, 7.0) == pytest.approx(5.0)  # rand is clamped to [0, 1]
    assert b.delay(1, -3.0) == pytest.approx(3.0)


def test_backoff_delay_never_exceeds_max() -> None:
    b = BackoffSettings(initial=1.0, factor=3.0, max=50.0, jitter=1.0)
    assert all(b.delay(n, 1.0) <= 50.0 for n in range(1, 30))
    assert b.delay(100_000, 1.0) == 50.0  # no OverflowError for huge failure counts


def test_backoff_constant_with_factor_one() -> None:
    b = BackoffSettings(initial=2.0, factor=1.0, max=2.0, jitter=0.0)
    assert {b.delay(n, 0.3) for n in range(1, 10)} == {2.0}


# --- house style ------------------------------------------------------------------------------


def test_every_field_is_documented_next_to_it() -> None:
    """Each field is followed by a docstring that states its default (or that it is required)."""
    tree = ast.parse(inspect.getsource(settings_module))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for cls in SETTINGS_CLASSES:
        body = classes[cls.__name__].body
        docs: dict[str, str] = {}
        for node, after in zip(body, [*body[1:], None], strict=True):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                docs[node.target.id] = after.value.value if is_doc else ""  # type: ignore[union-attr]
        for field in attrs.fields(cls):
            doc = docs.get(field.name, "")
            assert doc, f"{cls.__name__}.{field.name} has no docstring"
            if field.metadata.get("key", True):
                assert "Default" in doc or "Required" in doc, f"{cls.__name__}.{field.name}"


def test_public_face() -> None:
    assert sorted(config.__all__) == sorted(set(config.__all__))
    for name in config.__all__:
        assert hasattr(config, name), name


BOTTOM_LAYER = {"xos_runtime.exceptions", "xos_runtime.lazy"}


def test_config_layer_imports_nothing_of_the_other_layers() -> None:
    allowed = {"attrs", "yaml", "loguru", "packaging"} | set(sys.stdlib_module_names)
    folder = Path(config.__file__).parent
    for source in folder.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                # below config: only the bottom layer (exceptions, lazy names)
                ok = name.split(".")[0] in allowed or name in BOTTOM_LAYER
                assert ok, f"{source.name} imports {name}"
