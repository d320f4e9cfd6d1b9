"""The plugin table: one frozen record per discovered plugin, and the kinds of plugin."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal, get_args

import attrs

from xos_runtime.steps import EventStep, ModelPolicy, PullStep, SyncStep

__all__ = [
    "DIR_OPTIONS",
    "GROUP_SUFFIXES",
    "KIND_BASES",
    "PluginInfo",
    "PluginKind",
    "PluginTable",
    "StepKind",
    "entry_point_origin",
]

StepKind = Literal["sync_step", "event_step", "pull_step", "model_policy"]
PluginKind = Literal["sync_step", "event_step", "pull_step", "model_policy", "hooks"]

#: The base class a plugin of each step kind subclasses.
KIND_BASES: dict[StepKind, type] = {
    "sync_step": SyncStep,
    "event_step": EventStep,
    "pull_step": PullStep,
    "model_policy": ModelPolicy,
}
#: The entry-point group of each step kind, after the `<prefix>.`; hooks use `<prefix>` itself.
GROUP_SUFFIXES: dict[StepKind, str] = {
    "sync_step": "sync_steps",
    "event_step": "event_steps",
    "pull_step": "pull_steps",
    "model_policy": "model_policies",
}
#: The config option naming the directory of each step kind.
DIR_OPTIONS: dict[StepKind, str] = {
    "sync_step": "steps_dir",
    "event_step": "event_steps_dir",
    "pull_step": "pull_steps_dir",
    "model_policy": "model_policies_dir",
}

assert set(get_args(StepKind)) == set(KIND_BASES) == set(GROUP_SUFFIXES) == set(DIR_OPTIONS)


def entry_point_origin(
    group: str, name: str, target: str, distribution: str | None, version: str | None
) -> str:
    """`plugin 'dist 1.0' entry point group:name = module:Class`, as messages name a plugin."""
    where = f"entry point {group}:{name} = {target}"
    if distribution:
        dist = " ".join(p for p in (distribution, version) if p)
        return f"plugin '{dist}' {where}"
    return f"plugin {where}"


@attrs.frozen
class PluginInfo:
    """One discovered plugin: a step class, a policy class, or a module of hook implementations.

    * `kind`: `"sync_step"`, `"event_step"`, `"pull_step"`, `"model_policy"` or `"hooks"`.
    * `name`: the entry-point name; for a module of a `*_dir`, the class name; for a built-in
      hooks plugin, the module name.
    * `target`: `"module:Class"` (or `"module"` for hooks), as in an entry point.
    * `cls_or_module`: the loaded class or module.
    * `distribution`, `version`: the distribution that declared the entry point; None for
      a module of a `*_dir`.
    * `file`: the source file of the class or module, when known.
    * `group`: the entry-point group, or None for a module of a `*_dir` or a built-in (the
      hooks plugins the host registers itself).
    """

    kind: PluginKind
    name: str
    target: str
    cls_or_module: Any = attrs.field(eq=False, repr=False)
    distribution: str | None = None
    version: str | None = None
    file: str | None = None
    group: str | None = None

    @property
    def origin(self) -> str:
        """Where the plugin comes from, as messages name it.

        `plugin 'dist 1.0' entry point group:name = module:Class`,
        `plugin file PATH (Class)` or `built-in plugin NAME`.
        """
        if self.group is not None:
            return entry_point_origin(
                self.group, self.name, self.target, self.distribution, self.version
            )
        if self.kind == "hooks" and self.distribution == "xos-runtime":  # the host's own
            return f"built-in plugin {self.name}"
        if self.file is not None:
            return f"plugin file {self.file} ({self.class_name})"
        return f"plugin {self.name} ({self.target})"

    @property
    def class_name(self) -> str:
        """The name of the class (or module) behind the plugin."""
        return self.target.rpartition(":")[2] or self.target


def _to_entries(entries: Iterable[PluginInfo]) -> tuple[PluginInfo, ...]:
    return tuple(entries)


@attrs.frozen
class PluginTable:
    """The discovered plugins, in discovery order (built-ins, entry points, directories)."""

    entries: tuple[PluginInfo, ...] = attrs.field(default=(), converter=_to_entries)

    def __iter__(self) -> Iterator[PluginInfo]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def of_kind(self, kind: PluginKind) -> tuple[PluginInfo, ...]:
        """The entries of one kind."""
        return tuple(p for p in self.entries if p.kind == kind)

    def classes(self, kind: StepKind) -> tuple[type, ...]:
        """The plugin classes of one step kind."""
        return tuple(p.cls_or_module for p in self.entries if p.kind == kind)

    def without(self, drop: Iterable[PluginInfo]) -> PluginTable:
        """A table without the given entries (compared by identity)."""
        ids = {id(p) for p in drop}
        return PluginTable(p for p in self.entries if id(p) not in ids)

    def rows(self) -> list[dict[str, str | None]]:
        """The table as JSON-ready rows (what `xos-runtime plugins --json` prints)."""
        return [
            {
                "kind": p.kind,
                "name": p.name,
                "target": p.target,
                "distribution": p.distribution,
                "version": p.version,
                "file": p.file,
                "group": p.group,
            }
            for p in self.entries
        ]
