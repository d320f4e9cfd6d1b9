"""The typed settings of xos-runtime: one frozen attrs class per area of the config file.

Each field carries its default and meaning right below it. The classes check the *values*
they are given (ranges, choices, cross-field rules) and raise `ConfigError` whose `key` is
the field name; `loader` checks the *types* of what YAML produced, resolves paths and
secrets, and prefixes the key path and file name to any error.

Field metadata read by the loader (all optional):

* ``load``: the name of a load-time transform (``dir``, ``file``, ``new_file``,
  ``store_url``, ``secret``, ``rotation``) that needs the config file's folder or the disk;
* ``pre``: the name of a transform of the raw YAML value before its type is checked
  (``one_or_many`` turns a string into a one-item list, ``logging`` accepts a dictConfig);
* ``derive``: the name of a default computed from the rest of the file (``store_url``);
* ``key``: False for fields that are not config keys (`Settings.source` and friends);
* ``context``: True for a value later fields' defaults depend on (`Settings.name`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from xos_runtime.exceptions import ConfigError

__all__ = [
    "LEGACY_KEYS",
    "LOG_LEVELS",
    "STORE_URL_SCHEMES",
    "AccessorSettings",
    "BackoffSettings",
    "CoreSettings",
    "EventBusSettings",
    "EventSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PluginSettings",
    "PolicySettings",
    "PullSettings",
    "Settings",
    "SyncSettings",
    "default_store_url",
    "topic_name_error",
]

#: Top-level XOS keys that are accepted and ignored (kept in `Settings.legacy`).
LEGACY_KEYS: frozenset[str] = frozenset(
    {
        "desired_state",
        "required_models",
        "wrappers",
        "kafka_bootstrap_servers",
        "config_dir",
        "backoff_disabled",
        "xos_dir",
        "blueprints",
        "link_graph",
        "sys_dir",
        "keep_temp_files",
        "proxy_ssh",
        "error_map_path",
        "feefie",
        "node_key",
        "images_directory",
        "nova",
    }
)

#: Level names `logging.level` accepts (case-insensitive), lowest first.
LOG_LEVELS: tuple[str, ...] = (
    "TRACE",
    "DEBUG",
    "INFO",
    "SUCCESS",
    "WARNING",
    "ERROR",
    "CRITICAL",
)

#: URL schemes `accessor.endpoint` accepts (``postgresql+DRIVER`` is accepted too).
STORE_URL_SCHEMES: tuple[str, ...] = ("sqlite", "postgresql", "http", "https")

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def default_store_url(base_dir: str, name: str) -> str:
    """The embedded store used when `accessor.endpoint` is absent: ``<base_dir>/<name>.db``."""
    return "sqlite:///" + os.path.join(base_dir, f"{name}.db")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- value checks -----------------------------------------------------------------------------
# They ignore None (an optional value left unset) and raise ConfigError keyed by the field.


def _bounded(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> Validator:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if gt is not None and not value > gt:
            raise ConfigError(f"must be > {gt:g}, got {value!r}", key=attribute.name)
        if ge is not None and not value >= ge:
            raise ConfigError(f"must be >= {ge:g}, got {value!r}", key=attribute.name)
        if le is not None and not value <= le:
            raise ConfigError(f"must be <= {le:g}, got {value!r}", key=attribute.name)

    return check


def _one_of(*choices: str) -> Validator:
    def check(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and value not in choices:
            expected = ", ".join(repr(c) for c in choices)
            hint = did_you_mean(str(value), choices)
            raise ConfigError(
                f"expected one of {expected}, got {value!r}{hint}", key=attribute.name
            )

    return check


def _not_empty(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value:
        raise ConfigError("must not be empty", key=attribute.name)


def _store_url(_inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    expected = "expected sqlite:///PATH, sqlite://, postgresql://... or http(s)://HOST:PORT"
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ConfigError(f"not a store URL: {value!r} ({expected})", key=attribute.name)
    base = scheme.lower().split("+", 1)[0]
    if base not in STORE_URL_SCHEMES or ("+" in scheme and base != "postgresql"):
        hint = did_you_mean(scheme, STORE_URL_SCHEMES)
        raise ConfigError(f"unknown URL scheme {scheme!r} ({expected}){hint}", key=attribute.name)
    if base != "sqlite" and not rest.split("/", 1)[0]:
        raise ConfigError(f"no host in {value!r}", key=attribute.name)


def _dict_config(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    version = value.get("version")
    if isinstance(version, bool) or version != 1:
        raise ConfigError(
            f"a logging dictConfig needs 'version: 1', got {version!r}",
            key=f"{attribute.name}.version",
        )


def _upper(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else value


_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:,\[\]]+):(\d{1,5})$")


# --- the settings -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AccessorSettings:
    """Where the models are stored (XOS ``accessor``)."""

    endpoint: str = attrs.field(
        validator=_store_url, metadata={"load": "store_url", "derive": "store_url"}
    )
    """The store URL. ``sqlite:///PATH`` (the embedded store; a relative PATH is relative to
    the config file's folder, ``sqlite:////abs/path`` is absolute), ``sqlite://`` (in memory),
    ``postgresql://...`` (a shared store) or ``http(s)://HOST:PORT`` (a remote core).
    Default: ``sqlite:///<config folder>/<name>.db``."""

    username: str | None = None
    """User name for stores that authenticate. Default: None."""

    password: str | None = attrs.field(
        default=None,
        repr=lambda v: "None" if v is None else "'***'",
        metadata={"load": "secret"},
    )
    """Password. ``@PATH`` is replaced when loading by the first line of that file, stripped
    (a relative PATH is relative to the config folder). Default: None."""

    kind: str | None = None
    """XOS legacy (``grpcapi``/``testframework``): accepted and ignored. Default: None."""

    ca_file: str | None = attrs.field(default=None, metadata={"load": "file"})
    """With an ``https://`` endpoint: the PEM file of the certificate authority (or the
    self-signed certificate) the core's certificate is checked against (relative to the
    config folder; must exist). Default: None, the system's authorities."""

    retry_for: float = attrs.field(default=30.0, validator=_bounded(ge=0))
    """With an ``http(s)://`` endpoint: seconds a request waits for a core that does not
    answer (connection refused, timeouts, 5xx), retrying with backoff, before the command
    gives up with exit 2 (>= 0). Default: 30.0."""

    @property
    def remote(self) -> bool:
        """Whether the store is a remote core (an ``http(s)://`` endpoint)."""
        return self.endpoint.startswith(("http://", "https://"))


_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def topic_name_error(value: str) -> str | None:
    """Why `value` is not a topic name (Kafka's rule, kept on every bus), or None."""
    if _TOPIC.match(value) and value not in {".", ".."}:
        return None
    return f"expected a topic name (letters, digits, '.', '_', '-'; at most 249), got {value!r}"


def _topic_name(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    error = None if value is None else topic_name_error(value)
    if error is not None:
        raise ConfigError(error, key=attribute.name)


@attrs.frozen(kw_only=True)
class EventBusSettings:
    """Where event steps get their events from (XOS ``event_bus``)."""

    kind: Literal["store", "memory", "kafka"] = attrs.field(
        default="store", validator=_one_of("store", "memory", "kafka")
    )
    """``store`` (the embedded default: a log in the store's tables, which survives
    restarts and which every process on the store can publish into), ``memory`` (an alias
    of ``store``, its name before) or ``kafka``. Default: ``store``."""

    endpoint: str | None = None
    """Kafka bootstrap servers ``host:port[,host:port]``; required when `kind` is ``kafka``,
    unused otherwise. Default: None."""

    retention: float = attrs.field(default=7 * 24 * 3600.0, validator=_bounded(gt=0))
    """Seconds a message stays in the store's log (> 0; ``store`` only): older ones are
    deleted, and a consumer group that had not read them goes on at the oldest one left.
    Default: 604800.0 (7 days)."""

    def __attrs_post_init__(self) -> None:
        if self.kind != "kafka":
            return
        if self.endpoint is None:
            raise ConfigError(
                "required when event_bus.kind is 'kafka' (host:port[,host:port])", key="endpoint"
            )
        for server in self.endpoint.split(","):
            match = _HOST_PORT.match(server.strip())
            if not match or not 0 < int(match.group(2)) < 65536:
                raise ConfigError(
                    f"expected host:port[,host:port], got {self.endpoint!r}", key="endpoint"
                )

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers as a list (empty unless `endpoint` is set)."""
        if not self.endpoint:
            return []
        return [s.strip() for s in self.endpoint.split(",")]


@attrs.frozen(kw_only=True)
class LoggingSettings:
    """What is logged and where (XOS ``logging``)."""

    level: str = attrs.field(default="INFO", converter=_upper, validator=_one_of(*LOG_LEVELS))
    """Lowest level written: TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR or CRITICAL
    (any case; stored upper-case). Default: INFO."""

    format: Literal["text", "json"] = attrs.field(default="text", validator=_one_of("text", "json"))
    """``text`` (one readable line: time, level, source, message, bound extras such as
    ``step=``/``model=``/``id=``) or ``json`` (one compact JSON object per line).
    Default: ``text``."""

    file: str | None = attrs.field(default=None, metadata={"load": "new_file"})
    """Also write to this file (relative to the config folder; created when needed).
    Default: None, standard error only."""

    rotation: str | None = attrs.field(default=None, metadata={"load": "rotation"})
    """When `file` is rotated, in loguru's words: ``"10 MB"``, ``"1 day"``, ``"00:00"``...
    Default: None, never."""

    progress: float = attrs.field(default=10.0, validator=_bounded(ge=0))
    """Seconds between progress lines during a long pass (done, pending, rate, time
    left); 0: none. `run --until-idle` on a terminal shows a bar instead. Default: 10."""

    dict_config: dict[str, Any] | None = attrs.field(default=None, validator=_dict_config)
    """An XOS-style Python logging dictConfig (``version: 1``). Given as the whole
    ``logging`` value (as XOS configs do) it lands here. It is applied with
    `logging.config.dictConfig`; if that fails (XOS configs name ``multistructlog``
    handlers), the runtime's own logging is used at the root level it names.
    Default: None."""


@attrs.frozen(kw_only=True)
class BackoffSettings:
    """How long a failed object waits before it is retried.

    The wait after the n-th consecutive failure is ``initial * factor ** (n - 1)``, capped at
    `max`, then spread by ``± jitter`` of itself (and capped at `max` again); see `delay`.
    """

    initial: float = attrs.field(default=1.0, validator=_bounded(gt=0))
    """Seconds to wait after the first failure (> 0). Default: 1.0."""

    factor: float = attrs.field(default=2.0, validator=_bounded(ge=1))
    """Growth of the wait per further failure (>= 1; 1 is a constant wait). Default: 2.0."""

    max: float = attrs.field(default=300.0, validator=_bounded(gt=0))
    """Longest wait in seconds (>= `initial`). Default: 300.0."""

    jitter: float = attrs.field(default=0.1, validator=_bounded(ge=0, le=1))
    """Random spread as a fraction of the wait, 0..1 (0 = none). Default: 0.1."""

    def __attrs_post_init__(self) -> None:
        if self.max < self.initial:
            raise ConfigError(f"must be >= initial ({self.initial:g}), got {self.max:g}", key="max")

    def delay(self, failures: int, rand: float) -> float:
        """Seconds to wait after `failures` consecutive failures (0 for none).

        `rand` is a uniform random number in [0, 1] supplied by the caller (so tests need no
        random source): 0 gives the shortest wait ``(1 - jitter) * d``, 1 the longest
        ``(1 + jitter) * d``, 0.5 exactly ``d``. The result never exceeds `max`.
        """
        if failures <= 0:
            return 0.0
        try:
            base = min(self.max, self.initial * self.factor ** (failures - 1))
        except OverflowError:
            base = self.max
        rand = min(1.0, max(0.0, rand))
        spread = base * (1.0 - self.jitter + 2.0 * self.jitter * rand)
        return min(self.max, spread) if math.isfinite(spread) else self.max


@attrs.frozen(kw_only=True)
class SyncSettings:
    """The sync engine (sync and delete steps)."""

    workers: int = attrs.field(default=8, validator=_bounded(ge=1))
    """Size of the one worker pool shared by all steps (>= 1). Default: 8."""

    timeout: float | None = attrs.field(default=None, validator=_bounded(gt=0))
    """Default time limit in seconds of one `sync_record`/`delete_record` call (> 0); a call
    over it is abandoned and counted as a failure. Default: None, no limit."""

    poll_interval: float = attrs.field(default=5.0, validator=_bounded(gt=0))
    """Seconds between passes when no change notification wakes the engine (> 0).
    Default: 5.0 (XOS's fixed observer wait)."""

    backoff: BackoffSettings = attrs.Factory(BackoffSettings)
    """Retry waits of failed objects. Default: `BackoffSettings()`."""

    claims: bool | None = None
    """Share the work with other `xos-runtime run` processes on the same store: each object
    is claimed, in small batches, before it is synced, so no two processes sync it at once.
    None (automatic) or True: on, for every store more than one process can open (a SQLite
    file, PostgreSQL); the in-memory store has one process. False: off, and the process
    wants the store for itself: a second `run` on it is refused. Default: None."""

    claim_ttl: float = attrs.field(default=60.0, validator=_bounded(gt=0))
    """Seconds the lease of a `run` process lives unless renewed (it renews every third of
    this). Claims of a process that is gone from this host are taken over at once; those
    of a process on another host when its lease runs out. Default: 60.0."""

    max_abandoned: int | None = attrs.field(default=None, validator=_bounded(ge=0))
    """Calls abandoned after a timeout that may still be running at once (>= 0); past it,
    new calls wait for a worker until one returns. Default: None, 2 x `workers`."""

    grace_period: float = attrs.field(default=30.0, validator=_bounded(ge=0))
    """Seconds running calls get to finish after SIGTERM/SIGINT before `run` exits anyway
    (>= 0); calls still running then are abandoned. Default: 30.0."""


@attrs.frozen(kw_only=True)
class PolicySettings:
    """The model policy engine."""

    workers: int = attrs.field(default=4, validator=_bounded(ge=1))
    """Number of policy handlers run at once (>= 1). Default: 4."""

    timeout: float | None = attrs.field(default=None, validator=_bounded(gt=0))
    """Default time limit in seconds of one handler call (> 0). Default: None, no limit."""

    backoff: BackoffSettings = attrs.Factory(BackoffSettings)
    """Retry waits of objects whose policy failed. Default: `BackoffSettings()`."""


@attrs.frozen(kw_only=True)
class PullSettings:
    """The pull engine (pull steps)."""

    timeout: float | None = attrs.field(default=None, validator=_bounded(gt=0))
    """Default time limit in seconds of one `pull_records` call (> 0; a step's `timeout`
    wins). A call over it is abandoned and reported as timed out, and its step is not called
    again until that call has returned. Default: None, no limit."""


@attrs.frozen(kw_only=True)
class EventSettings:
    """The event engine (event steps)."""

    max_attempts: int = attrs.field(default=3, validator=_bounded(ge=1))
    """Calls of `process_event` for one message before it is skipped (committed) so that it
    cannot block its partition; deferrals do not count (>= 1). Default: 3."""

    backoff: BackoffSettings = attrs.Factory(BackoffSettings)
    """Waits between the attempts of a failing message. Default: `BackoffSettings()`."""

    dead_letter_topic: str | None = attrs.field(default=None, validator=_topic_name)
    """Topic a message is sent to, on the same bus, when it is skipped (its attempts used
    up, or a `PermanentException`): the original key, value and headers, plus the headers
    ``xos-runtime-error`` (the last error's message) and ``xos-runtime-attempts`` (failed
    calls, as text). The message is committed only once the dead letter is sent. A Kafka
    topic name (letters, digits, ``.``, ``_``, ``-``; at most 249). Default: None, a skipped
    message is only logged."""


@attrs.frozen(kw_only=True)
class PluginSettings:
    """Plugin discovery."""

    skip_broken: bool = False
    """True: a plugin that fails to load is logged and skipped; False: it stops start-up.
    Default: False."""

    disabled: list[str] = attrs.Factory(list)
    """Plugins not to load, each an entry point name, ``module:Class`` or a class name.
    Default: [] (load all)."""

    enabled: list[str] | None = None
    """The installed plugins (entry points) this config runs, named as in `disabled` (an
    entry point, ``module:Class``, a class or a distribution name); the others are not even
    imported. The built-in engines and the plugins of the ``*_dir`` folders always run.
    Default: None (every installed plugin)."""


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """The HTTP endpoint of `xos-runtime run` for metrics (Prometheus text) and health."""

    enabled: bool = False
    """True: serve `/metrics` and `/healthz` while `run` runs. Default: False."""

    host: str = "127.0.0.1"
    """Address to listen on. Default: 127.0.0.1 (this machine only)."""

    port: int = attrs.field(default=9464, validator=_bounded(ge=0, le=65535))
    """Port to listen on (0 picks a free one, logged at start-up). Default: 9464."""


@attrs.frozen(kw_only=True)
class CoreSettings:
    """`xos-runtime core serve`: the XOS core's REST API over this config's store."""

    host: str = attrs.field(default="127.0.0.1", validator=_not_empty)
    """Address to listen on. Default: 127.0.0.1 (this machine only)."""

    port: int = attrs.field(default=8000, validator=_bounded(ge=0, le=65535))
    """Port to listen on (0 picks a free one, logged at start-up). Default: 8000."""

    tls_cert: str | None = attrs.field(default=None, metadata={"load": "file"})
    """PEM certificate (chain) served over TLS; with `tls_key`. Default: None, plain HTTP."""

    tls_key: str | None = attrs.field(default=None, metadata={"load": "file"})
    """PEM private key of `tls_cert`. Default: None."""

    def __attrs_post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "tls_key" if self.tls_key is None else "tls_cert"
            raise ConfigError("TLS needs both tls_cert and tls_key", key=missing)


def _cwd() -> str:
    return os.getcwd()


def _default_accessor(self: Settings) -> AccessorSettings:
    return AccessorSettings(endpoint=default_store_url(self.base_dir, self.name))


@attrs.frozen(kw_only=True)
class Settings:
    """The whole configuration of one runtime process (one config file)."""

    name: str = attrs.field(validator=_not_empty, metadata={"context": True})
    """The synchronizer's name: names its default store file, its Kafka consumer group and
    its log lines. Required."""

    source: str | None = attrs.field(default=None, metadata={"key": False})
    """Absolute path of the file this was loaded from; None when built from a mapping."""

    base_dir: str = attrs.field(factory=_cwd, metadata={"key": False})
    """Folder relative paths were resolved against: the config file's folder (the current
    directory when built from a mapping without one)."""

    accessor: AccessorSettings = attrs.field(
        default=attrs.Factory(_default_accessor, takes_self=True)
    )
    """The model store. Default: the embedded SQLite store ``<base_dir>/<name>.db``."""

    core_version: str | None = None
    """The XOS core API versions this synchronizer works with: a specifier (``">=4.0.0"``),
    ``"MIN,MAX"`` (inclusive) or XOS's ``"A ~ B"``. One that does not admit the version
    xos-runtime implements (`coreversion.CORE_API_VERSION`, 4.0.4) stops start-up.
    Default: None, any."""

    dependency_graph: str | None = attrs.field(default=None, metadata={"load": "file"})
    """XOS model-deps file (absolute once loaded; must exist). Default: None, the graph is
    derived from the models' links."""

    models_dir: list[str] = attrs.field(
        factory=list, metadata={"load": "dir", "pre": "one_or_many"}
    )
    """Folders of ``.xproto`` model definitions (one string or a list; absolute once
    loaded; each must exist). Default: []."""

    steps_dir: str | None = attrs.field(default=None, metadata={"load": "dir"})
    """Folder of sync step modules (must exist). Default: None."""

    model_policies_dir: str | None = attrs.field(default=None, metadata={"load": "dir"})
    """Folder of model policy modules (must exist). Default: None."""

    pull_steps_dir: str | None = attrs.field(default=None, metadata={"load": "dir"})
    """Folder of pull step modules (must exist). Default: None."""

    event_steps_dir: str | None = attrs.field(default=None, metadata={"load": "dir"})
    """Folder of event step modules (must exist). Default: None."""

    event_bus: EventBusSettings = attrs.Factory(EventBusSettings)
    """The event source of event steps. Default: in memory."""

    logging: LoggingSettings = attrs.field(factory=LoggingSettings, metadata={"pre": "logging"})
    """Logging. Default: text at INFO on standard error."""

    sync: SyncSettings = attrs.Factory(SyncSettings)
    """The sync engine. Default: `SyncSettings()`."""

    policies: PolicySettings = attrs.Factory(PolicySettings)
    """The model policy engine. Default: `PolicySettings()`."""

    pull: PullSettings = attrs.Factory(PullSettings)
    """The pull engine. Default: `PullSettings()`."""

    events: EventSettings = attrs.Factory(EventSettings)
    """The event engine. Default: `EventSettings()`."""

    plugins: PluginSettings = attrs.Factory(PluginSettings)
    """Plugin discovery. Default: `PluginSettings()`."""

    metrics: MetricsSettings = attrs.Factory(MetricsSettings)
    """Metrics and health endpoint. Default: `MetricsSettings()` (off)."""

    core: CoreSettings = attrs.Factory(CoreSettings)
    """`xos-runtime core serve`. Default: `CoreSettings()` (127.0.0.1:8000, no TLS)."""

    legacy: dict[str, Any] = attrs.field(factory=dict, metadata={"key": False})
    """The legacy XOS keys found in the file (see `LEGACY_KEYS`), kept as read and otherwise
    ignored. Default: {}."""


def config_keys(cls: type) -> dict[str, attrs.Attribute[Any]]:
    """The fields of a settings class that are config keys, in declaration order."""
    return {f.name: f for f in attrs.fields(cls) if f.metadata.get("key", True)}
