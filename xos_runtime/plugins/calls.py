"""Calling a hook so that a failing implementation is named, not just shown as a traceback.

Start-up hooks (`xos_runtime_configure`, `_models`, `_model_deps`, `_engines`, `_startup`)
and `xos_runtime_shutdown` run plugin code; when it raises, the user must learn which plugin
did, as with a plugin that fails to load. `call_hook` calls the implementations one by one,
in pluggy's order (last registered first), and turns an exception into a `PluginError`
naming the plugin's distribution and entry point (or file).
"""

from __future__ import annotations

from typing import Any

from xos_runtime.exceptions import PluginError
from xos_runtime.plugins.failures import describe_exception
from xos_runtime.plugins.manager import DiscoveredPlugins


def _origin(found: DiscoveredPlugins, plugin: object, name: str) -> str:
    for info in found.table:
        if info.cls_or_module is plugin:
            return info.origin
    return f"plugin {name!r}"


def call_hook(found: DiscoveredPlugins, hook_name: str, **kwargs: Any) -> list[Any]:
    """The non-None results of every implementation of `hook_name`, like `pm.hook.X(...)`."""
    caller = getattr(found.hook, hook_name)
    impls = caller.get_hookimpls()
    if any(i.hookwrapper or getattr(i, "wrapper", False) for i in impls):
        return list(caller(**kwargs))  # wrappers need pluggy's own calling loop
    results: list[Any] = []
    for impl in reversed(impls):
        try:
            result = impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            where = _origin(found, impl.plugin, impl.plugin_name)
            raise PluginError(f"{where} failed in {hook_name}: {describe_exception(exc)}") from exc
        if result is not None:
            results.append(result)
    return results
