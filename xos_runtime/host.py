"""The host: wires config, plugins, models, store and engines, and runs the engines.

`Runtime.load(config)` does everything start-up needs, in order, each step failing with a
message that names what is at fault: load the config; discover plugins (entry points and
`*_dir` modules); ask them to configure themselves; collect models (`models_dir` and the
`xos_runtime_models` hook) and the dependency graph; validate the plugins against the models;
open (or evolve) the store. `Runtime.engines()` asks every plugin, built-ins included, for its
engines through the `xos_runtime_engines` hook.

Three ways to run: `serve()` until a signal, `run_once()`, and `run_until_idle()`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
import networkx as nx
from loguru import logger

from xos_runtime.config import Settings, load_config
from xos_runtime.config.coreversion import check_core_version
from xos_runtime.engines import (
    HELD_ELSEWHERE_RECHECK,
    BackendCode,
    EventBus,
    LoopEngine,
    PassReport,
    Progress,
    ShowProgress,
    builtin,
    open_event_bus,
)
from xos_runtime.exceptions import ConfigError
from xos_runtime.models import build_model_graph, load_models
from xos_runtime.models.definitions import ModelSet
from xos_runtime.models.loader import read_sources
from xos_runtime.plugins import DiscoveredPlugins, call_hook, discover
from xos_runtime.store import HeldClaims, Key, Lease, ModelAccessor, open_store

if TYPE_CHECKING:
    from xos_runtime.observe import ObservedHost, Observer, StatusServer


class Engine(Protocol):
    """What the host needs of an engine (sync, policies, pull, events, or a plugin's own)."""

    name: str

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport: ...

    def serve(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def _flatten(results: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for result in results:
        if result is None:
            continue
        if isinstance(result, str | os.PathLike | tuple):
            out.append(result)
        else:
            out.extend(result)
    return out


def _merge_deps(results: Iterable[Mapping[str, Any] | None]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for result in results:
        for model, entries in (result or {}).items():
            merged.setdefault(model, []).extend(entries)
    return merged


def _log_progress(progress: Progress) -> None:
    """Progress as a log line, at INFO; the last report of a pass says how long it took."""
    logger.info("{}", progress.describe())


@attrs.define
class RunSummary:
    """What a `--once` or `--until-idle` run did, and what it left behind."""

    passes: int = 0
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    in_error: int = 0
    timed_out: bool = False
    #: Objects other processes still held when the run ended (it could not do them).
    held: list[HeldClaims] = attrs.Factory(list)
    #: Units of work by outcome kind (`success`, `error`, `deferred`, `blocked`...), every
    #: engine's, pull calls included: what `describe()` counts.
    outcomes: Counter[str] = attrs.Factory(Counter)
    #: Objects a failure held back, in any pass (each pass holds them back again: counted
    #: once).
    held_back: set[Key] = attrs.Factory(set)

    def add(self, report: PassReport) -> None:
        """Count one engine's pass."""
        self.attempted += report.attempted
        self.succeeded += report.succeeded
        self.failed += len(report.failed)
        self.outcomes.update(report.outcomes)
        self.held_back |= report.blocked

    def describe(self) -> str:
        """The run's one-line summary, each number saying what it counts; the parts add up.

        `attempted`/`succeeded`/`failed` come from different counters (pull calls were
        succeeded or failed but never attempted, deferrals were failed): read together they
        did not add up (`11 attempted, 10 succeeded, 2 failed`). Here every call made is in
        exactly one of the parts that follow it; objects held back by a failure were not
        called and are counted apart.
        """
        o = self.outcomes
        failed = o["error"] + o["permanent"] + o["timeout"]
        calls = o["success"] + failed + o["deferred"] + o["innocuous"]
        parts = [f"{o['success']} succeeded", f"{failed} failed"]
        parts += [f"{o[k]} {k}" for k in ("deferred", "innocuous") if o[k]]
        line = f"{self.passes} pass(es): {calls} call(s)"
        line += f" ({', '.join(parts)})" if calls else ""
        if self.held_back:
            line += f"; {len(self.held_back)} object(s) held back by their dependencies"
        line += f"; {self.in_error} object(s) in error"
        return line + ("; timed out" if self.timed_out else "")

    @property
    def exit_code(self) -> int:
        return 1 if self.in_error or self.timed_out or self.held else 0

    def describe_held(self) -> str:
        """One line: how many objects are held by which process."""
        total = sum(h.count for h in self.held)
        parts = []
        for h in self.held:
            note = f", {h.abandoned} of them abandoned calls" if h.abandoned else ""
            parts.append(f"{h.count} by {h.describe()} ({h.kind}{note})")
        return f"{total} object(s) held by other processes: " + "; ".join(parts)


class Runtime:
    """Everything a running synchronizer holds. Build it with `Runtime.load`."""

    def __init__(
        self,
        settings: Settings,
        plugins: DiscoveredPlugins,
        models: ModelSet,
        graph: nx.DiGraph,
        accessor: ModelAccessor,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.plugins = plugins
        self.models = models
        self.graph = graph
        self.accessor = accessor
        self.clock = clock
        self._engines: list[Engine] | None = None
        self._event_bus: EventBus | None = None
        self._lease: Lease | None = None
        #: Set by `request_stop()` (SIGTERM/SIGINT): no new work, drain, return.
        self._stop = threading.Event()
        #: Who is told how long passes go (`logging.progress`): log lines by default; the
        #: command line puts a bar there on a terminal. Set before `engines()`.
        self.progress: ShowProgress | None = _log_progress if settings.logging.progress else None
        #: Seconds between two reports to `progress`.
        self.progress_every = settings.logging.progress or 10.0
        # Steps and scripts publish through the accessor, to the bus of this config.
        accessor.event_publisher = self.publish_event
        self._observer: Observer | None = None

    @property
    def hook(self) -> Any:
        return self.plugins.hook

    @property
    def event_bus(self) -> EventBus:
        """The bus of the config's `event_bus` (made on first use); `publish(topic, key,
        value, headers=())` sends a message to the event steps. Assign before `engines()`
        to use another bus."""
        if self._event_bus is None:
            self._event_bus = open_event_bus(
                self.settings.event_bus,
                client_id=f"xos-runtime-{self.settings.name}",
                accessor=self.accessor,
            )
        return self._event_bus

    @event_bus.setter
    def event_bus(self, bus: EventBus) -> None:
        self._event_bus = bus

    def publish_event(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int] | None:
        """`event_bus.publish`: where `accessor.publish_event` sends (steps, scripts)."""
        return self.event_bus.publish(topic, key, value, headers)

    # -- sharing the store with other processes -------------------------------------------

    @property
    def shared_store(self) -> bool:
        """Whether other processes can open this store (every store but in-memory SQLite)."""
        return self.accessor.shared

    @property
    def shares_work(self) -> bool:
        """Whether the engines claim their work (`sync.claims`, on unless False)."""
        return self.shared_store and self.settings.sync.claims is not False

    @property
    def lease(self) -> Lease | None:
        """This process's registration on a shared store (None for the in-memory store)."""
        if self._lease is None and self.shared_store:
            self._lease = self.accessor.lease(
                ttl=self.settings.sync.claim_ttl,
                shares_work=self.shares_work,
                name=self.settings.name,
                clock=self.clock,
            )
        return self._lease

    def register(self) -> None:
        """Announce this `run` on the store and keep its lease alive.

        Raises `StoreInUse` when `sync.claims: false` forbids company: this one, or a live
        `run` already there, wants the store for itself.
        """
        if self.lease is not None:
            self.lease.start_heartbeat()

    # -- start-up ----------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        config: Settings | str | os.PathLike[str] | None,
        *,
        clock: Callable[[], float] | None = None,
        dry_run: bool = False,
        skip_broken_why: str | None = None,
        plugins: DiscoveredPlugins | None = None,
        models_optional: bool = False,
        keep_stored_models: bool = False,
    ) -> Runtime:
        """Start-up up to an open store. `dry_run` (for `check`) changes nothing in the store:
        it only checks that the models fit what is stored. With `skip_broken_why`, broken
        plugins are left out with a warning that says why, whatever `plugins.skip_broken`
        says (commands that only look at the store). `plugins` replaces discovery with
        plugins found otherwise (`xos_runtime.testing` names exactly those a test runs).
        `models_optional`: a config and a store with no models are no error (`events
        publish` needs only the runtime's tables).
        `keep_stored_models` keeps the models the store holds beside the config's (the
        core, which serves what synchronizers loaded into it too)."""
        settings = config if isinstance(config, Settings) else load_config(config)
        # XOS's core refused a synchronizer written for another core API; so do we, first.
        check_core_version(settings.core_version, file=settings.source)
        if plugins is None:
            plugins = discover_plugins(settings, skip_broken_why)
        call_hook(plugins, "xos_runtime_configure", config=settings)
        models, graph = load_model_definitions(settings, plugins)
        plugins.validate(models.names() if len(models) else None)
        if settings.accessor.remote:
            accessor = _open_core(settings, plugins, load=bool(len(models)) and not dry_run)
        else:
            accessor = open_store(
                settings.accessor.endpoint,
                models if len(models) else None,
                clock=clock,
                dry_run=dry_run,
                models_optional=models_optional,
                keep_stored=keep_stored_models,
            )
        if not len(models) or (keep_stored_models and len(accessor.models) != len(models)):
            models = accessor.models
            graph = build_model_graph(models, settings.dependency_graph)
            plugins.validate(models.names())
        try:
            call_hook(plugins, "xos_runtime_store_opened", accessor=accessor)
        except BaseException:
            accessor.close()
            raise
        return cls(settings, plugins, models, graph, accessor, clock=clock or time.time)

    def engines(self) -> list[Engine]:
        """Every engine the plugins provide (the built-in ones register like any plugin)."""
        if self._engines is None:
            found = _flatten(call_hook(self.plugins, "xos_runtime_engines", runtime=self))
            for engine in found:
                if isinstance(engine, LoopEngine):
                    engine.progress = self.progress
                    engine.progress_every = self.progress_every
            self._engines = list(found)
        return self._engines

    def close(self) -> None:
        if self._engines is not None:
            for engine in self._engines:
                engine.close()
        if self._event_bus is not None:
            self._event_bus.close()
        if self._lease is not None:
            self._lease.close()
        self.accessor.close()

    # -- running ---------------------------------------------------------------------------

    def startup(self) -> None:
        call_hook(self.plugins, "xos_runtime_startup", runtime=self)

    def shutdown(self) -> None:
        call_hook(self.plugins, "xos_runtime_shutdown", runtime=self)

    def run_once(self) -> RunSummary:
        """One pass of each engine, in the order they were registered."""
        summary = RunSummary(passes=1)
        for engine in self.engines():
            summary.add(engine.run_pass())
        summary.in_error = self.count_in_error()
        return summary

    def run_until_idle(self, timeout: float | None = None) -> RunSummary:
        """Passes until nothing is ready that has not already failed or been deferred.

        Objects that failed or were deferred in this run, objects backing off, and pull
        intervals do not keep it running. With `timeout`, the run ends when it expires, even
        in the middle of a pass: calls still running are abandoned (they never delay the
        exit) and what did not finish stays pending.

        Objects another process holds are not done: the run waits for them (each pass also
        takes over the claims of processes that are gone). It stops waiting when all that
        others hold are calls they abandoned after a timeout, or when `timeout` expires;
        then `summary.held` says who holds what, and the exit code is 1.
        """
        summary = RunSummary()
        excluded: dict[str, set[Key]] = {}
        expired = threading.Event()
        timer: threading.Timer | None = None
        if timeout is not None:

            def expire() -> None:
                expired.set()
                self._abandon_all()

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        if self._stop.is_set():  # a signal during start-up
            for engine in self.engines():
                engine.stop()
        try:
            while True:
                attempted = held = 0
                for engine in self.engines():
                    skip = excluded.setdefault(engine.name, set())
                    report = engine.run_pass(exclude=skip)
                    skip |= report.failed
                    attempted += report.attempted
                    held += report.held_elsewhere
                    summary.add(report)
                summary.passes += 1
                if expired.is_set():
                    summary.timed_out = True
                    break
                if self._stop.is_set():
                    break  # SIGTERM: what did not start stays pending
                if attempted:
                    continue
                if not held:
                    break
                others = self.claims_elsewhere()
                if others and all(h.count == h.abandoned for h in others):
                    break  # nothing left but calls hung elsewhere: they will not finish soon
                self._stop.wait(HELD_ELSEWHERE_RECHECK)
        finally:
            if timer is not None:
                timer.cancel()
        if held or summary.timed_out:
            summary.held = self.claims_elsewhere()
        summary.in_error = self.count_in_error()
        return summary

    def claims_elsewhere(self) -> list[HeldClaims]:
        """The claims that other processes hold on this store."""
        if not self.shares_work:
            return []
        mine = self.lease.owner if self.lease is not None else None
        return [h for h in self.accessor.held_claims() if h.owner != mine]

    def serve(self, *, install_signals: bool = True, ready: threading.Event | None = None) -> int:
        """Run every engine until SIGTERM/SIGINT (or `request_stop`), then drain; returns 0."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop.set())
        threads: list[threading.Thread] = []
        # before any engine starts, so that a port in use stops start-up with no work begun
        engine_names: dict[threading.Thread, str] = {}
        metrics = self._start_metrics(
            lambda: [engine_names[t] for t in threads if not t.is_alive()]
        )
        for engine in self.engines():
            t = threading.Thread(target=engine.serve, name=f"engine-{engine.name}", daemon=True)
            engine_names[t] = engine.name
            t.start()
            threads.append(t)
        logger.info("xos-runtime {} running {} engine(s)", self.settings.name, len(threads))
        if ready is not None:
            ready.set()
        while not self._stop.wait(0.5):
            pass
        if metrics is not None:
            metrics.stop()
        logger.info("stopping: no new work; waiting for running calls to finish")
        for engine in self.engines():
            engine.stop()
        deadline = time.monotonic() + self.settings.sync.grace_period
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            logger.warning("grace period over; abandoning {}", ", ".join(left))
        logger.info("stopped")
        return 0

    def observer(self) -> Observer:
        """Metrics, health and the status page (made on first use, with their imports: a
        `run` without `metrics.enabled` loads none of it); its outcome metrics are a plugin
        of the hook contract like any other, registered here."""
        if self._observer is None:
            from xos_runtime.observe import Observer

            self._observer = Observer(self)
            self.plugins.plugin_manager.register(
                self._observer.outcomes, name="xos_runtime.observe"
            )
        return self._observer

    def _start_metrics(self, dead_engines: Callable[[], list[str]]) -> StatusServer | None:
        m = self.settings.metrics
        if not m.enabled:
            return None
        try:
            server = self.observer().serve(dead_engines)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {m.host}:{m.port}: {exc.strerror or exc}",
                file=self.settings.source,
                key="metrics.port",
            ) from exc
        base = f"http://{m.host}:{server.port}"
        logger.info("status page on {}/, metrics on /metrics, health on /healthz and /readyz", base)
        return server

    def claims_held(self) -> dict[str, int]:
        """The claims this process holds on a shared store, by engine kind (sync, policy)."""
        if self._lease is None:
            return {}
        mine = self._lease.owner
        return {h.kind: h.count for h in self.accessor.held_claims() if h.owner == mine}

    def abandoned_calls(self) -> dict[str, int]:
        """Calls abandoned after a timeout that still run, by engine name."""
        return {e.name: getattr(e, "abandoned_calls", 0) for e in self._engines or []}

    def running_calls(self) -> list[str]:
        """Plugin calls that still run, timed-out and abandoned ones included, one line each."""
        lines: list[str] = []
        for engine in self._engines or []:
            describe = getattr(engine, "running_calls", None)
            if describe is not None:
                lines.extend(describe())
        return lines

    def log_leftovers(self) -> None:
        """Say what the process leaves behind as it exits: calls that still run (they are on
        daemon threads, so the exit never waits for them) and threads that plugins started
        as non-daemon threads, which Python does wait for."""
        calls = self.running_calls()
        if calls:
            logger.warning(
                "exiting without waiting for {} abandoned call(s): {}",
                len(calls),
                "; ".join(calls),
            )
        current = threading.current_thread()
        held = [
            t.name
            for t in threading.enumerate()
            if t.is_alive()
            and not t.daemon
            and t is not current
            and t is not threading.main_thread()
        ]
        if held:
            (logger.warning if calls else logger.info)(
                "Python exits only once these non-daemon threads (started by plugins) end: {}",
                ", ".join(held),
            )

    def request_stop(self) -> None:
        """Stop taking new work (from a signal handler or another thread); running calls
        finish. `serve` then drains and returns; `run_once` and `run_until_idle` end their
        pass and return, abandoning calls still running after `sync.grace_period`."""
        self._stop.set()
        if self._engines is None:
            return
        for engine in self._engines:
            engine.stop()
        timer = threading.Timer(self.settings.sync.grace_period, self._abandon_all)
        timer.daemon = True
        timer.start()

    def _abandon_all(self) -> None:
        for engine in self._engines or []:
            abandon = getattr(engine, "abandon", None)
            (abandon or engine.stop)()

    # -- status ----------------------------------------------------------------------------

    def count_in_error(self) -> int:
        """Objects (live or awaiting deletion) whose sync or policy ended in error (code 2)."""
        return self.accessor.count_with_code(BackendCode.ERROR)


def discover_plugins(
    settings: Settings,
    skip_broken_why: str | None = None,
    *,
    installed: Collection[str] | None = None,
    given: Iterable[object] = (),
) -> DiscoveredPlugins:
    """The plugins of `settings`: the built-in engines, the installed plugins and the `*_dir`
    folders. `installed` replaces `plugins.enabled` (empty: no installed plugin at all) and
    `given` adds plugins handed over as objects (both for `xos_runtime.testing`)."""
    return discover(
        steps_dir=settings.steps_dir,
        event_steps_dir=settings.event_steps_dir,
        pull_steps_dir=settings.pull_steps_dir,
        model_policies_dir=settings.model_policies_dir,
        skip_broken=settings.plugins.skip_broken or skip_broken_why is not None,
        skip_why=None if settings.plugins.skip_broken else skip_broken_why,
        disabled=settings.plugins.disabled,
        enabled=settings.plugins.enabled if installed is None else installed,
        builtin_plugins=[builtin],
        use_entry_points=installed is None or bool(installed),
        given=given,
    )


def _model_sources(settings: Settings, plugins: DiscoveredPlugins) -> list[Any]:
    """The config's `models_dir` folders, then what the plugins contribute."""
    return [*settings.models_dir, *_flatten(call_hook(plugins, "xos_runtime_models"))]


def _open_core(settings: Settings, plugins: DiscoveredPlugins, *, load: bool) -> ModelAccessor:
    """The accessor of a `run` over a core (`accessor.endpoint: http(s)://...`): with `load`,
    the synchronizer's models go to the core first (as XOS's LoadModels), which evolves its
    store with the same rules and refusals as a local store."""
    from xos_runtime.store.remote import open_settings

    sources = read_sources(_model_sources(settings, plugins)) if load else []
    remote = open_settings(settings, models=(settings.name, list(sources)))
    # The remote accessor has every face of `ModelAccessor` the engines and the host use,
    # not its SQL store: its reads and claim-free bookkeeping are checked by mypy against
    # `store.faces.EngineReads`; its leases, claims and batches pair with each other.
    return cast(ModelAccessor, remote)


def load_model_definitions(
    settings: Settings, plugins: DiscoveredPlugins
) -> tuple[ModelSet, nx.DiGraph]:
    """Models from `models_dir` and the plugins, and the dependency graph over them."""
    sources = _model_sources(settings, plugins)
    contributed = sources[len(settings.models_dir) :]
    models = load_models(sources) if sources else ModelSet({})
    if settings.models_dir and not contributed and not len(models):
        # Opening with the models the store remembers is for a config *without* models_dir;
        # one whose models_dir is empty (a wrong folder, files not copied) must not do so
        # silently: the plugins would be checked against models the user no longer has.
        raise ConfigError(
            f"{', '.join(settings.models_dir)} holds no *.xproto model definition "
            "and no plugin contributes models",
            file=settings.source,
            key="models_dir",
        )
    deps = _merge_deps(call_hook(plugins, "xos_runtime_model_deps"))
    graph = build_model_graph(models, settings.dependency_graph, deps=deps or None)
    return models, graph


if TYPE_CHECKING:
    from xos_runtime.engines import EngineHost

    def _an_engine_host(runtime: Runtime) -> EngineHost:
        """Where mypy checks that the host is what the hook contract (`hookspecs.Runtime`)
        and the built-in engines (`EngineHost`) take it for."""
        return runtime

    def _an_observed_host(runtime: Runtime) -> ObservedHost:
        """Where mypy checks that the host is what the observer reads (`observe`)."""
        return runtime
