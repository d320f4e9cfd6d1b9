"""The harness: a runtime in this process, on a temporary store, with the plugins a test names."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from xos_runtime.config import Settings, settings_from_dict
from xos_runtime.engines import ObjectStatus, StatusReport, collect_status
from xos_runtime.exceptions import PluginError
from xos_runtime.hookspecs import hookimpl
from xos_runtime.host import RunSummary, Runtime, discover_plugins
from xos_runtime.plugins import DiscoveredPlugins, unmatched_names
from xos_runtime.store import ModelAccessor, ModelObject
from xos_runtime.testing._calls import Call, CallRecorder
from xos_runtime.testing._clock import FakeClock

__all__ = ["Harness", "ModelSource", "PluginSpec"]

#: A plugin to run: an installed plugin's name (as `plugins.enabled` takes it: entry-point
#: name, `module:Class`, class name or distribution), a step or policy class, or a module
#: (or object) of hook implementations.
PluginSpec = str | type | object
#: Models: xproto source text (a `str` holding `{` or a line break), or the path of an
#: `.xproto` file or of a folder of them.
ModelSource = str | os.PathLike[str]

_NO_JITTER = {"backoff": {"jitter": 0}}


def _defaults(folder: Path) -> dict[str, Any]:
    """The harness's own config, under what the test gives: a store in the temporary
    folder, no claims (one process), and backoff without jitter, so that waits are exact."""
    return {
        "name": "xos-runtime-test",
        "accessor": {"endpoint": f"sqlite:///{folder / 'store.db'}"},
        "sync": {"claims": False, **_NO_JITTER},
        "policies": dict(_NO_JITTER),
        "events": dict(_NO_JITTER),
    }


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, sections merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class _Models:
    """Contributes the harness's `models` through the `xos_runtime_models` hook."""

    def __init__(self, sources: list[str | tuple[str, str]]):
        self.sources = sources

    @hookimpl
    def xos_runtime_models(self) -> list[str | tuple[str, str]]:
        return self.sources


def _model_sources(
    models: ModelSource | Iterable[ModelSource] | None,
) -> list[str | tuple[str, str]]:
    if models is None:
        return []
    items = [models] if isinstance(models, str | os.PathLike) else list(models)
    out: list[str | tuple[str, str]] = []
    for n, item in enumerate(items):
        if isinstance(item, str) and ("{" in item or "\n" in item):
            out.append((f"<Harness models[{n}]>", item))
        else:
            path = os.path.abspath(os.fspath(item))
            if not os.path.exists(path):
                raise FileNotFoundError(f"Harness(models=...): no such file or folder: {path}")
            out.append(path)
    return out


class Harness:
    """A runtime in this process on a temporary SQLite store, driven by the test.

    Use it as a context manager (or call `start()` and `close()`)::

        with Harness([SyncSite, SitePolicy], models=XPROTO) as h:
            site = h.accessor.Site.objects.create(name="x")
            h.run_until_idle()
            assert h.reload(site).backend_code == 1

    :param plugins: what runs, and nothing else: installed plugins by name (matched as
        `plugins.enabled` matches them; a name that matches nothing is a `PluginError`),
        step and policy classes, and modules (or objects) of hook implementations. The
        built-in engines always run; no other installed plugin does.
    :param models: xproto source text, or paths of `.xproto` files or folders (a `str`
        without `{` or a line break is a path), in addition to the models the plugins
        contribute.
    :param config: config keys, as in the YAML file, over the harness's defaults (name
        `xos-runtime-test`, the temporary store, `sync.claims: false`, backoff jitter 0).
        Relative paths are relative to the temporary folder: give absolute ones. The
        `plugins` section may say `skip_broken` and `disabled`; `plugins=` says the rest.
    :param clock: the clock of the runtime (a new `FakeClock` by default).
    :param startup: call the `xos_runtime_startup` hooks once the engines are built (as
        `xos-runtime run` does; a plugin may seed the store there).
    """

    def __init__(
        self,
        plugins: Iterable[PluginSpec] = (),
        *,
        models: ModelSource | Iterable[ModelSource] | None = None,
        config: Mapping[str, Any] | None = None,
        clock: FakeClock | None = None,
        startup: bool = True,
    ):
        specs = [plugins] if isinstance(plugins, str) else list(plugins)
        self._names = [p for p in specs if isinstance(p, str)]
        self._given: list[object] = [p for p in specs if not isinstance(p, str)]
        self._models = _model_sources(models)
        self._config = dict(config or {})
        self._startup = startup
        self.clock = clock if clock is not None else FakeClock()
        self._recorder = CallRecorder(self.clock)
        self._runtime: Runtime | None = None
        self._folder: Path | None = None
        self._started_up = False

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Harness:
        """Make the temporary folder, load the runtime and build its engines."""
        if self._runtime is not None:
            raise RuntimeError("this Harness is already started")
        self._folder = Path(tempfile.mkdtemp(prefix="xos-runtime-test-"))
        try:
            settings = self._settings(self._folder)
            runtime = Runtime.load(settings, clock=self.clock, plugins=self._discover(settings))
            self._runtime = runtime
            runtime.plugins.plugin_manager.register(self._recorder, name="xos_runtime.testing")
            runtime.engines()
            if self._startup:
                self._started_up = True
                runtime.startup()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Shut the runtime down (the `xos_runtime_shutdown` hooks), close it and remove the
        temporary folder. Safe to call twice."""
        runtime, self._runtime = self._runtime, None
        try:
            if runtime is not None:
                try:
                    if self._started_up:
                        runtime.shutdown()
                finally:
                    runtime.close()
        finally:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _settings(self, folder: Path) -> Settings:
        plugins = self._config.get("plugins")
        if isinstance(plugins, Mapping) and "enabled" in plugins:
            raise ValueError("Harness(config=...): name the plugins to run in Harness(plugins=...)")
        data = _merged(_defaults(folder), self._config)
        return settings_from_dict(data, base_dir=str(folder))

    def _discover(self, settings: Settings) -> DiscoveredPlugins:
        given = [*self._given, _Models(self._models)] if self._models else self._given
        found = discover_plugins(settings, installed=self._names, given=given)
        missing = unmatched_names(self._names, found.table)
        if missing:
            raise PluginError(
                "Harness(plugins=...): no installed plugin matches "
                + ", ".join(repr(name) for name in missing)
            )
        return found

    # -- what the test reads ---------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime (`xos_runtime.host.Runtime`); only while started."""
        if self._runtime is None:
            raise RuntimeError("the Harness is not started: use `with Harness(...) as h:`")
        return self._runtime

    @property
    def accessor(self) -> ModelAccessor:
        """The model accessor over the temporary store: create and read objects with it."""
        return self.runtime.accessor

    @property
    def path(self) -> Path:
        """The temporary folder (the store lives in it); removed by `close()`."""
        if self._folder is None:
            raise RuntimeError("the Harness is not started")
        return self._folder

    @property
    def store_url(self) -> str:
        """The store's URL, for `xos_runtime.connect` or a config of `xos-runtime` commands."""
        return str(self.runtime.settings.accessor.endpoint)

    @property
    def now(self) -> float:
        """The harness clock's time, in epoch seconds."""
        return self.clock.now

    # -- driving the runtime ---------------------------------------------------------------------

    def run_once(self) -> RunSummary:
        """One pass of each engine (pull, policies, sync, events), as `run --once` does."""
        return self.runtime.run_once()

    def run_until_idle(self, timeout: float | None = 60.0) -> RunSummary:
        """Passes until nothing is ready, as `run --until-idle` does: objects that failed or
        were deferred in this run, objects backing off and pull intervals do not keep it
        going. `timeout` is in real seconds (None: none)."""
        return self.runtime.run_until_idle(timeout=timeout)

    def advance(self, seconds: float) -> float:
        """Move the clock forward (see `FakeClock.advance`); return the new time."""
        return self.clock.advance(seconds)

    def publish(
        self,
        topic: str,
        value: bytes | str | None,
        *,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Send a message on the runtime's event bus (the config's `event_bus`; by default
        the bus in the harness's temporary store); the next pass hands it to the event
        steps."""
        self.runtime.event_bus.publish(topic, key, value, headers)

    # -- outcomes ---------------------------------------------------------------------------------

    @property
    def outcomes(self) -> list[Call]:
        """Every unit of work reported since the start (or `clear_calls()`), oldest first,
        objects held back by a failed dependency included."""
        return self._recorder.records

    @property
    def calls(self) -> list[Call]:
        """The calls made into plugin code: `outcomes` without the `blocked` ones."""
        return [c for c in self._recorder.records if c.called]

    def calls_of(
        self, step: type | str, method: str | None = None, *, kind: str | None = None
    ) -> list[Call]:
        """The `calls` of one step or policy (its class or class name), optionally of one
        method (`sync_record`, `handle_create`...) and one outcome kind."""
        name = step if isinstance(step, str) else step.__name__
        return [
            c
            for c in self.calls
            if c.step == name
            and (method is None or c.method == method)
            and (kind is None or c.kind == kind)
        ]

    def clear_calls(self) -> None:
        """Forget the calls and outcomes recorded so far."""
        self._recorder.clear()

    # -- status -----------------------------------------------------------------------------------

    def reload(self, obj: ModelObject) -> ModelObject:
        """The object as stored now, soft-deleted ones included. Raises `LookupError` once
        it is purged (`state(obj) == "gone"` says so without raising)."""
        found = self._stored(obj)
        if found is None:
            raise LookupError(f"{obj.leaf_model_name} {obj.id} is no longer in the store")
        return found

    def _stored(self, obj: ModelObject) -> ModelObject | None:
        cls = type(obj)
        found = cls.objects.filter(id=obj.id).first()
        if found is None:
            found = cls.deleted_objects.filter(id=obj.id).first()
        return found

    def status(self) -> StatusReport:
        """What `xos-runtime status` reports on the store, at the harness clock's time."""
        return collect_status(self.accessor, self.now)

    def _status_of(self, obj: ModelObject) -> ObjectStatus | None:
        model = obj.leaf_model_name
        for entry in self.status().objects:
            if entry.id == obj.id and entry.model == model:
                return entry
        return None

    def state(self, obj: ModelObject) -> str:
        """The object's state as `xos-runtime status` names it: `ok`, `pending`,
        `backing_off`, `deferred`, `error`, `held_back`, `deleting` or `policy_error`;
        `gone` once it is purged."""
        entry = self._status_of(obj)
        if entry is not None:
            return entry.state
        return "ok" if self._stored(obj) is not None else "gone"

    def retry_in(self, obj: ModelObject) -> float | None:
        """Seconds until a failed object's retry (0 when it is due); None when it waits for
        none. `advance(h.retry_in(obj))` makes it ready."""
        entry = self._status_of(obj)
        if entry is None or entry.next_run is None:
            return None
        return max(0.0, entry.next_run - self.now)
