"""Discovery: finds every plugin, builds the plugin table and the pluggy plugin manager.

Order, which is also the order of the table: built-in hook plugins (the host's engines), the
entry points of the `<prefix>` group (hook modules), of `<prefix>.sync_steps`,
`.event_steps`, `.pull_steps` and `.model_policies`, then the `*_dir` directories.
Hook implementations are called in reverse registration order (pluggy's rule), so a
third-party plugin's implementation runs before a built-in one.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
from collections.abc import Collection, Iterable
from types import ModuleType
from typing import Any, cast

import attrs
import pluggy
from loguru import logger

from xos_runtime import hookspecs
from xos_runtime.hookspecs import PROJECT_NAME
from xos_runtime.plugins.directories import DirectoryLoader, parents_on_sys_path
from xos_runtime.plugins.entrypoints import (
    distribution_of,
    entry_point_origin_of,
    entry_points_of,
    load_entry_points,
    source_file,
)
from xos_runtime.plugins.failures import SKIPPED_BY_CONFIG, FailureLog, describe_exception
from xos_runtime.plugins.table import (
    GROUP_SUFFIXES,
    KIND_BASES,
    PluginInfo,
    PluginKind,
    PluginTable,
    StepKind,
)
from xos_runtime.plugins.validate import kind_of, validate_plugins
from xos_runtime.steps import EventStep, ModelPolicy, PullStep, SyncStep

__all__ = ["DiscoveredPlugins", "discover", "given_plugin", "new_plugin_manager", "unmatched_names"]


def new_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager that knows every hook of `xos_runtime.hookspecs` and no plugin."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


@attrs.define
class DiscoveredPlugins:
    """What discovery found: the table, the pluggy manager and what went wrong.

    `failures` holds one message per plugin that was left out (only ever non-empty with
    `skip_broken`: otherwise discovery raises instead); `disabled` holds the origin of each
    plugin that the `disabled` option turned off.
    """

    table: PluginTable
    plugin_manager: pluggy.PluginManager
    failures: list[str] = attrs.field(factory=list)
    disabled: list[str] = attrs.field(factory=list)
    skip_broken: bool = False
    #: Why broken plugins are skipped, for the warnings of `validate`.
    skip_why: str = SKIPPED_BY_CONFIG

    @property
    def hook(self) -> pluggy.HookRelay:
        """`plugin_manager.hook`: call hooks as `discovered.hook.xos_runtime_models()`."""
        return self.plugin_manager.hook

    def _classes(self, kind: StepKind) -> tuple[Any, ...]:
        return self.table.classes(kind)

    @property
    def sync_steps(self) -> tuple[type[SyncStep], ...]:
        return cast(tuple[type[SyncStep], ...], self._classes("sync_step"))

    @property
    def event_steps(self) -> tuple[type[EventStep], ...]:
        return cast(tuple[type[EventStep], ...], self._classes("event_step"))

    @property
    def pull_steps(self) -> tuple[type[PullStep], ...]:
        return cast(tuple[type[PullStep], ...], self._classes("pull_step"))

    @property
    def model_policies(self) -> tuple[type[ModelPolicy], ...]:
        return cast(tuple[type[ModelPolicy], ...], self._classes("model_policy"))

    @property
    def hook_plugins(self) -> tuple[object, ...]:
        """The registered modules (or objects) of hook implementations."""
        return tuple(p.cls_or_module for p in self.table.of_kind("hooks"))

    def validate(self, model_names: Collection[str] | None) -> list[str]:
        """Check the plugins against the models; see `validate_plugins`.

        Raises `PluginError` unless discovery was told to skip broken plugins; otherwise
        drops the failing plugins from the table, adds their messages to `failures`, and
        returns those messages.
        """
        result = validate_plugins(
            self.table, model_names, skip_broken=self.skip_broken, skip_why=self.skip_why
        )
        self.table = result.table
        self.failures.extend(result.failures)
        return list(result.failures)


def _normalise_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _DisabledNames:
    """The `disabled` option: entry-point or class name, `module:Class`, distribution, file."""

    def __init__(self, items: Collection[str]):
        self._items = [item.strip() for item in items if item and item.strip()]
        self._used: set[str] = set()

    def match(
        self,
        *,
        name: str,
        target: str,
        distribution: str | None = None,
        file: str | None = None,
    ) -> bool:
        keys = {name, target}
        if ":" in target:
            keys.add(target.rpartition(":")[2].rpartition(".")[2])
        if file:
            keys |= {file, os.path.basename(file)}
        for item in self._items:
            if item in keys or (
                distribution and _normalise_dist(item) == _normalise_dist(distribution)
            ):
                self._used.add(item)
                return True
        return False

    def match_info(self, info: PluginInfo) -> bool:
        return self.match(
            name=info.name, target=info.target, distribution=info.distribution, file=info.file
        )

    def unused(self) -> list[str]:
        return [item for item in self._items if item not in self._used]


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    return [
        name
        for name, caller in vars(pm.hook).items()
        if not name.startswith("_") and caller.has_spec()
    ]


def given_plugin(plugin: object) -> PluginInfo:
    """The table entry of a plugin handed to `discover(given=...)` rather than discovered.

    A class is a step or policy of the kind its base class says (`kind_of`); anything else,
    a module or an object, holds hook implementations. Such a plugin has no distribution and
    no entry-point group: messages name it by its file and class.
    """
    kind = kind_of(plugin)
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    target = f"{plugin.__module__}:{plugin.__qualname__}" if isinstance(plugin, type) else name
    return PluginInfo(
        kind=kind or "hooks",
        name=name,
        target=target,
        cls_or_module=plugin,
        file=source_file(plugin if isinstance(plugin, type | ModuleType) else type(plugin)),
    )


def unmatched_names(names: Collection[str], table: PluginTable) -> list[str]:
    """The names of `names` (as `enabled` takes them) that match no installed plugin of
    `table` (those that came from entry points)."""
    matcher = _DisabledNames(names)
    for info in table:
        if info.group is not None:
            matcher.match_info(info)
    return matcher.unused()


def _register(pm: pluggy.PluginManager, info: PluginInfo, failures: FailureLog) -> bool:
    """Register a hooks plugin; False (and a failure) when pluggy refuses it."""
    plugin = info.cls_or_module
    name = info.name
    if pm.has_plugin(name) and info.distribution:
        # Two distributions may both call their hooks entry point "hooks".
        name = f"{info.distribution}:{info.name}"
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        failures.add(f"{info.origin} failed to register: {describe_exception(exc)}", exc)
        return False
    callers = pm.get_hookcallers(plugin) or []
    unknown = [
        caller.name
        for caller in callers
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    ]
    if unknown:
        pm.unregister(plugin)
        known = _spec_names(pm)
        details = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            details.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        failures.add(f"{info.origin} implements unknown hook {', '.join(details)}")
        return False
    if not callers:
        logger.warning("{} implements no {} hook", info.origin, PROJECT_NAME)
    return True


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("xos-runtime")
    except importlib.metadata.PackageNotFoundError:
        return None


def discover(
    *,
    steps_dir: str | None = None,
    event_steps_dir: str | None = None,
    pull_steps_dir: str | None = None,
    model_policies_dir: str | None = None,
    skip_broken: bool = False,
    skip_why: str | None = None,
    disabled: Collection[str] = (),
    enabled: Collection[str] | None = None,
    groups_prefix: str = "xos_runtime",
    builtin_plugins: Iterable[object] = (),
    use_entry_points: bool = True,
    given: Iterable[object] = (),
) -> DiscoveredPlugins:
    """Find, load and register every plugin.

    :param steps_dir, event_steps_dir, pull_steps_dir, model_policies_dir: directories whose
        `.py` files are loaded as plugins of that kind (see `xos_runtime.plugins.directories`).
    :param skip_broken: log a warning for a plugin that fails to load and go on without it,
        instead of raising `PluginError`; `skip_why` says why in the warning.
    :param disabled: plugins to leave out, each an entry-point name, a `module:Class` target,
        a class name, a distribution name (all its plugins), or a plugin file's path or name.
        A disabled entry point is not even imported.
    :param enabled: when given, the only installed plugins (entry points) to load, named as
        in `disabled`; built-ins and directory plugins are not affected.
    :param groups_prefix: the entry-point group of hook modules; step groups are
        `<prefix>.sync_steps` etc.
    :param builtin_plugins: modules (or objects) of hook implementations registered first,
        under their `__name__`: the host passes the built-in engines here.
    :param use_entry_points: False looks at the directories (and built-ins) only.
    :param given: plugins handed over as objects rather than discovered (what
        `xos_runtime.testing` runs, as stevedore's `make_test_instance` does): step and
        policy classes join the table after the entry points, anything else (a module or
        an object) is registered as hook implementations (see `given_plugin`). A class of
        none of the base classes is a failure. `disabled` and `enabled` do not apply.
    :raises PluginError: unless `skip_broken`, when any plugin failed; the message names
        each one (one line per failure) with its distribution or file and the cause.
    """
    failures = FailureLog(skip_broken=skip_broken, why=skip_why or SKIPPED_BY_CONFIG)
    off = _DisabledNames(disabled)
    on = _DisabledNames(enabled) if enabled is not None else None
    pm = new_plugin_manager()
    entries: list[PluginInfo] = []
    skipped: list[str] = []

    version = _own_version()
    for plugin in builtin_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        info = PluginInfo(
            kind="hooks",
            name=name,
            target=name,
            cls_or_module=plugin,
            distribution="xos-runtime",
            version=version,
            file=source_file(plugin),
        )
        if off.match(name=info.name, target=info.target):
            skipped.append(info.origin)
            pm.set_blocked(name)
        elif _register(pm, info, failures):
            entries.append(info)

    if use_entry_points:
        groups: list[tuple[str, PluginKind]] = [(groups_prefix, "hooks")]
        groups += [(f"{groups_prefix}.{GROUP_SUFFIXES[kind]}", kind) for kind in KIND_BASES]
        for group, kind in groups:
            selected = []
            for ep in entry_points_of(group):
                names = {"name": ep.name, "target": ep.value}
                dist = distribution_of(ep)[0]
                if off.match(**names, distribution=dist) or (
                    on is not None and not on.match(**names, distribution=dist)
                ):
                    skipped.append(entry_point_origin_of(ep))
                else:
                    selected.append(ep)
            infos = load_entry_points(group, kind, selected, failures)
            if kind == "hooks":
                infos = [info for info in infos if _register(pm, info, failures)]
            entries += infos

    for plugin in given:
        info = given_plugin(plugin)
        if isinstance(plugin, type) and info.kind == "hooks":
            bases = ", ".join(base.__name__ for base in KIND_BASES.values())
            failures.add(f"{info.origin} is a class that subclasses none of {bases}")
        elif info.kind != "hooks" or _register(pm, info, failures):
            entries.append(info)

    directories: dict[StepKind, str | None] = {
        "sync_step": steps_dir,
        "event_step": event_steps_dir,
        "pull_step": pull_steps_dir,
        "model_policy": model_policies_dir,
    }
    loader = DirectoryLoader(failures, directories)

    def skip_file(path: str) -> bool:
        if off.match(name=path, target=path, file=path):
            skipped.append(f"plugin file {path}")
            return True
        return False

    parents_on_sys_path(d for d in directories.values() if d and os.path.isdir(d))
    for kind, directory in directories.items():
        if not directory:
            continue
        for info in loader.load(directory, kind, skip_file=skip_file):
            if off.match_info(info):
                skipped.append(info.origin)
            else:
                entries.append(info)

    for item in off.unused():
        logger.warning("plugins.disabled: {!r} matches no plugin", item)
    for item in on.unused() if on is not None else ():
        logger.warning("plugins.enabled: {!r} matches no installed plugin", item)
    for origin in skipped:
        logger.info("{} is disabled", origin)
    failures.raise_unless_skipping()
    return DiscoveredPlugins(
        table=PluginTable(entries),
        plugin_manager=pm,
        failures=list(failures.messages),
        disabled=skipped,
        skip_broken=skip_broken,
        skip_why=failures.why,
    )
