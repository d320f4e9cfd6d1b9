"""The hook contract between xos-runtime and its plugins, grouped by lifecycle phase.

A plugin contributes hook implementations from a module named by an entry point of the
`xos_runtime` group::

    [project.entry-points."xos_runtime"]
    my_plugin = "my_plugin.hooks"

and marks each implementation with `xos_runtime.hookimpl`::

    from xos_runtime import hookimpl

    @hookimpl
    def xos_runtime_models():
        return [Path(__file__).parent / "models" / "my.xproto"]

An implementation may take any subset of the parameters of its specification, by name.
Unless a hook says otherwise, every implementation is called and the results of those that
return something other than None are collected in a list, the most recently registered
plugin first (pluggy's rule). The built-in engines are plugins of the same contract: the host
registers them first, so a third-party plugin's implementations run before them.

Hooks:

* discovery and models: `xos_runtime_models`, `xos_runtime_model_deps`;
* start-up: `xos_runtime_configure`, `xos_runtime_store_opened`, `xos_runtime_engines`,
  `xos_runtime_startup`;
* work (observers): `xos_runtime_sync_outcome`, `xos_runtime_policy_outcome`,
  `xos_runtime_event_outcome`, `xos_runtime_pull_outcome`;
* shut-down: `xos_runtime_shutdown`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import networkx as nx

    from xos_runtime.config import Settings
    from xos_runtime.models.definitions import ModelSet
    from xos_runtime.store import Lease, ModelAccessor

__all__ = ["PROJECT_NAME", "Runtime", "hookimpl", "hookspec"]

#: The pluggy project name: the markers and the plugin manager are tied to it.
PROJECT_NAME = "xos_runtime"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: One model source: an xproto file path, or `(name, text)` where name is used in messages.
ModelSource = str | PathLike[str] | tuple[str, str]


class Runtime(Protocol):
    """The host object that `xos_runtime_engines`, `xos_runtime_startup` and
    `xos_runtime_shutdown` receive (`xos_runtime.host.Runtime`): what a plugin may read of it.

    Read-only for plugins. `plugins` and `event_bus` are typed where they are defined, in
    layers above this contract: `xos_runtime.plugins.DiscoveredPlugins` and
    `xos_runtime.engines.EventBus` (`xos_runtime.engines.builtin.EngineHost` names them).
    """

    @property
    def settings(self) -> Settings:
        """The loaded configuration."""
        ...

    @property
    def accessor(self) -> ModelAccessor:
        """The model accessor over the store."""
        ...

    @property
    def models(self) -> ModelSet:
        """The model definitions (xproto of `models_dir` and of the plugins)."""
        ...

    @property
    def graph(self) -> nx.DiGraph:
        """The model dependency graph."""
        ...

    @property
    def plugins(self) -> Any:
        """The discovered plugins: their steps, policies and the plugin table."""
        ...

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hooks of every plugin (call them with keyword arguments)."""
        ...

    @property
    def event_bus(self) -> Any:
        """The event bus the config's `event_bus` names (opened on first use)."""
        ...

    @property
    def shares_work(self) -> bool:
        """Whether the engines claim their work (several processes on one store)."""
        ...

    @property
    def lease(self) -> Lease | None:
        """This process's registration on the store, when it shares work."""
        ...

    @property
    def clock(self) -> Callable[[], float]:
        """The wall clock (epoch seconds) the engines use."""
        ...


# -------------------------------------------------------------------------------------------
# Discovery and models: called once, after the plugins are loaded and before the store opens.
# -------------------------------------------------------------------------------------------


@hookspec
def xos_runtime_models() -> Sequence[ModelSource] | None:
    """Return the model definitions this plugin contributes.

    Called once at start-up (and by `xos-runtime check`/`graph`), after discovery, before the
    models of the config's `models_dir` are parsed together with these.

    :return: a list whose items are either the path of an `.xproto` file (`str` or
        `pathlib.Path`; a relative path is relative to the current directory, so plugins
        should return absolute paths, e.g. built from `__file__`) or a `(name, text)` tuple
        holding xproto source, `name` standing for the file in error messages
        (`name:LINE:COLUMN: message`). None or an empty list: nothing to add.
    """


@hookspec
def xos_runtime_model_deps() -> Mapping[str, Iterable[Sequence[str]]] | None:
    """Return extra model dependencies, in the XOS model-deps form.

    Called once at start-up, after `xos_runtime_models`. The entries are merged with the
    config's `dependency_graph` file and with the dependencies derived from the `manytoone`
    links of the models.

    :return: `{"User": [["Site", "site", "users"]]}`: for each model, the models it depends
        on, each as `[model, link field on the dependent, reverse name on the model]` (the last
        two may be empty strings when there is no link). None: nothing to add.
    """


# -------------------------------------------------------------------------------------------
# Start-up: in this order, once per process.
# -------------------------------------------------------------------------------------------


@hookspec
def xos_runtime_configure(config: Any) -> None:
    """Called once the configuration is loaded and the plugins discovered.

    Before the models are loaded and the store is opened: the place to read the plugin's own
    settings or to fail early (raise `xos_runtime.exceptions.PluginError` with a message for
    the operator; start-up then stops with exit status 2).

    :param config: the runtime's settings object (`xos_runtime.config`), read-only.
    """


@hookspec
def xos_runtime_store_opened(accessor: ModelAccessor) -> None:
    """Called once the store is open and its model classes are built, before any engine.

    Also when a script opens the store through a config file (`xos_runtime.connect(path)`)
    and for `xos-runtime check`, which start no engine: the place to prepare what objects of
    the store need in every process that uses it (XOS compatibility puts its convenience
    methods on the model classes here). An exception stops start-up (exit status 2).

    :param accessor: the model accessor over the opened store (`accessor.<Model>`).
    """


@hookspec
def xos_runtime_engines(runtime: Runtime) -> Iterable[Any] | None:
    """Return the engines this plugin runs.

    Called once, after the store is open and before any engine starts. The built-in sync,
    policy, pull and event engines are contributed through this hook by a plugin that the
    host registers before any other, so that they follow the same rules as third-party ones.

    :param runtime: the host object: settings, model accessor, plugin table, event bus.
    :return: an iterable of engine objects with the interface of `xos_runtime.engines`
        (started in order, stopped in reverse order at shut-down); None: no engine.
    """


@hookspec
def xos_runtime_startup(runtime: Runtime) -> None:
    """Called once every engine has started, before the first pass.

    :param runtime: the host object: settings, model accessor, plugin table, event bus.
        An exception stops start-up (exit status 2).
    """


# -------------------------------------------------------------------------------------------
# Work: called after each unit of work, on the worker that did it. For observers (metrics,
# audit logs, tracing): they must be quick and must not raise; an exception is logged and
# ignored, never changes the outcome, and the object's status is already saved.
# -------------------------------------------------------------------------------------------


@hookspec
def xos_runtime_sync_outcome(step: Any, obj: Any, outcome: Any) -> None:
    """Called after `sync_record` or `delete_record` ran (or was skipped) for one object.

    :param step: the `SyncStep` class that handled the object (each call has a fresh
        instance, so observers get the class).
    :param obj: the object, as saved with its new status.
    :param outcome: the engines' frozen outcome record: what happened (ok, deferred,
        innocuous, permanent, error, timeout, blocked), whether it was a deletion, the
        message and the duration.
    """


@hookspec
def xos_runtime_policy_outcome(policy: Any, obj: Any, action: str, outcome: Any) -> None:
    """Called after the model policies of one object ran.

    :param policy: the `ModelPolicy` class whose handler ran.
    :param obj: the object, as saved with its new policy status.
    :param action: `"create"`, `"update"` or `"delete"`.
    :param outcome: the engines' frozen outcome record (see `xos_runtime_sync_outcome`).
    """


@hookspec
def xos_runtime_event_outcome(step: Any, event: Any, outcome: Any) -> None:
    """Called after `process_event` handled (or failed to handle) one message.

    :param step: the `EventStep` class.
    :param event: the `xos_runtime.steps.Event`.
    :param outcome: the engines' frozen outcome record (see `xos_runtime_sync_outcome`).
    """


@hookspec
def xos_runtime_pull_outcome(step: Any, outcome: Any) -> None:
    """Called after one `pull_records` call returned, failed, or timed out (outcome kind
    ``timeout``: the call was abandoned and may still run; the step is not called again
    until it returns).

    :param step: the `PullStep` class.
    :param outcome: the engines' frozen outcome record (see `xos_runtime_sync_outcome`).
    """


# -------------------------------------------------------------------------------------------
# Shut-down.
# -------------------------------------------------------------------------------------------


@hookspec
def xos_runtime_shutdown(runtime: Runtime) -> None:
    """Called once after every engine has stopped and drained, before the store closes.

    Also called when start-up fails after `xos_runtime_startup` ran.

    :param runtime: the host object.
    """
