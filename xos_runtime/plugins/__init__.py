"""Plugin discovery: entry points (stevedore), hook modules (pluggy) and `*_dir` modules.

`discover(...)` finds every plugin and returns a `DiscoveredPlugins` with the plugin table
(`PluginInfo` records), the pluggy plugin manager and the step classes by kind;
`validate_plugins` (or `DiscoveredPlugins.validate`) checks them against the models once
those are known. A broken plugin raises `xos_runtime.exceptions.PluginError` with one line
naming it and the cause, or, with `skip_broken`, is logged and left out.
"""

from xos_runtime.plugins.calls import call_hook
from xos_runtime.plugins.directories import DirectoryLoader, package_name_for, plugin_files
from xos_runtime.plugins.entrypoints import load_entry_points
from xos_runtime.plugins.manager import (
    DiscoveredPlugins,
    discover,
    given_plugin,
    new_plugin_manager,
    unmatched_names,
)
from xos_runtime.plugins.table import (
    DIR_OPTIONS,
    GROUP_SUFFIXES,
    KIND_BASES,
    PluginInfo,
    PluginKind,
    PluginTable,
    StepKind,
)
from xos_runtime.plugins.validate import (
    ValidationResult,
    kind_error,
    kind_of,
    plugin_problems,
    validate_plugins,
)

__all__ = [
    "DIR_OPTIONS",
    "GROUP_SUFFIXES",
    "KIND_BASES",
    "DirectoryLoader",
    "DiscoveredPlugins",
    "PluginInfo",
    "PluginKind",
    "PluginTable",
    "StepKind",
    "ValidationResult",
    "call_hook",
    "discover",
    "given_plugin",
    "kind_error",
    "kind_of",
    "load_entry_points",
    "new_plugin_manager",
    "package_name_for",
    "plugin_files",
    "plugin_problems",
    "unmatched_names",
    "validate_plugins",
]
