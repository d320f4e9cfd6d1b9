"""Plugins declared by the entry points of installed distributions, loaded with stevedore.

Each group is loaded by one stevedore `ExtensionManager` whose `on_load_failure_callback`
turns an import error into a failure message naming the distribution, the entry point and
the cause, so one broken plugin never hides the others.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from stevedore import ExtensionManager
from stevedore.extension import Extension

from xos_runtime.plugins.failures import FailureLog, describe_exception
from xos_runtime.plugins.table import PluginInfo, PluginKind, entry_point_origin
from xos_runtime.plugins.validate import kind_error

__all__ = ["distribution_of", "entry_point_origin_of", "entry_points_of", "load_entry_points"]

EntryPoint = importlib.metadata.EntryPoint


#: Every entry point of the distributions on `sys.path`, and the `sys.path` they were read on.
_scanned: tuple[tuple[str, ...], Any] | None = None


def entry_points_of(group: str) -> list[EntryPoint]:
    """The entry points of `group` of the distributions on the current `sys.path`, in order.

    All groups are read in one scan, kept while `sys.path` stays the same: a scan reads
    every installed distribution's metadata (tens of ms where many packages are installed)
    and discovery asks for five groups.
    """
    global _scanned
    path = tuple(sys.path)
    if _scanned is None or _scanned[0] != path:
        _scanned = (path, importlib.metadata.entry_points())
    return list(_scanned[1].select(group=group))


def distribution_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    """The name and version of the distribution that declares `ep`, when known."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.name, dist.version


def entry_point_origin_of(ep: EntryPoint) -> str:
    """`plugin 'dist 1.0' entry point group:name = module:Class`."""
    return entry_point_origin(ep.group, ep.name, ep.value, *distribution_of(ep))


def source_file(obj: object) -> str | None:
    """The source file of a class or module, when it has one."""
    try:
        return inspect.getsourcefile(obj) or inspect.getfile(obj)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return None


class _LoadAborted(Exception):
    """Carries an AssertionError or SystemExit out of a plugin import."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


class _GroupManager(ExtensionManager):
    """An ExtensionManager over a given list of `importlib.metadata` entry points.

    The entry points come from `importlib.metadata`, not from stevedore's cache, for two
    reasons: they carry their distribution (`ep.dist`), which the plugin table reports, and
    they follow the current `sys.path` (stevedore's class-level `ENTRY_POINT_CACHE` is keyed
    by group only, so a second discovery in one process would see stale entry points).
    """

    def __init__(
        self,
        group: str,
        entry_points: Iterable[EntryPoint],
        on_load_failure: Callable[[ExtensionManager, EntryPoint, BaseException], None],
    ):
        self._selected = list(entry_points)
        super().__init__(
            group,
            propagate_map_exceptions=True,
            on_load_failure_callback=on_load_failure,
        )

    def list_entry_points(self) -> list[EntryPoint]:
        return self._selected

    def _load_one_plugin(
        self,
        ep: EntryPoint,
        invoke_on_load: bool,
        invoke_args: tuple[Any],
        invoke_kwds: dict[str, Any],
    ) -> Extension[Any] | None:
        try:
            return super()._load_one_plugin(ep, invoke_on_load, invoke_args, invoke_kwds)
        except (AssertionError, SystemExit) as exc:
            # stevedore lets these two through; from a plugin's import they still only mean
            # that this plugin is broken.
            raise _LoadAborted(exc) from exc


def load_entry_points(
    group: str,
    kind: PluginKind,
    entry_points: Iterable[EntryPoint],
    failures: FailureLog,
) -> list[PluginInfo]:
    """Load `entry_points` of `group`; each must name a plugin of `kind`.

    Returns the plugins that loaded and are of the right kind; every other one adds a message
    to `failures`.
    """

    def on_load_failure(_mgr: ExtensionManager, ep: EntryPoint, exc: BaseException) -> None:
        cause = exc.original if isinstance(exc, _LoadAborted) else exc
        failures.add(
            f"{entry_point_origin_of(ep)} failed to load: {describe_exception(cause)}", cause
        )

    def to_info(ext: Extension[Any]) -> PluginInfo | None:
        ep: EntryPoint = ext.entry_point
        error = kind_error(kind, ext.plugin)
        if error is not None:
            failures.add(f"{entry_point_origin_of(ep)} {error}")
            return None
        distribution, version = distribution_of(ep)
        return PluginInfo(
            kind=kind,
            name=ep.name,
            target=ep.value,
            cls_or_module=ext.plugin,
            distribution=distribution,
            version=version,
            file=source_file(ext.plugin),
            group=group,
        )

    manager = _GroupManager(group, entry_points, on_load_failure)
    if not manager.extensions:  # map() raises NoMatches on an empty manager
        return []
    return [info for info in manager.map(to_info) if info is not None]
