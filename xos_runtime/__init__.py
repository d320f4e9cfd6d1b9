"""xos-runtime: a fast, observable plugin host that does the job of the XOS Synchronizer.

This module is the public face for plugin authors and scripts (contract section 2):
the base classes to subclass, the exceptions that choose how a failure is treated, the
pluggy `hookimpl` marker, and `connect()` to open a model accessor.

The base classes and `hookimpl` are imported on first use (PEP 562 `__getattr__`): every
command imports this package, and `xos-runtime --help` should not pay for loguru, attrs and
pluggy, which they bring in. `from xos_runtime import SyncStep` works as it always did.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException
from xos_runtime.lazy import lazy_names

if TYPE_CHECKING:
    from xos_runtime.hookspecs import hookimpl
    from xos_runtime.steps import Event, EventStep, ModelPolicy, Policy, PullStep, SyncStep
    from xos_runtime.store import ModelAccessor

__version__ = "0.1.0"

__all__ = [
    "DeferredException",
    "Event",
    "EventStep",
    "InnocuousException",
    "ModelPolicy",
    "PermanentException",
    "Policy",
    "PullStep",
    "SyncStep",
    "__version__",
    "connect",
    "hookimpl",
]

#: The public names imported on first use, and the module of each.
_LAZY = {
    "Event": "xos_runtime.steps",
    "EventStep": "xos_runtime.steps",
    "ModelPolicy": "xos_runtime.steps",
    "Policy": "xos_runtime.steps",
    "PullStep": "xos_runtime.steps",
    "SyncStep": "xos_runtime.steps",
    "hookimpl": "xos_runtime.hookspecs",
}


if not TYPE_CHECKING:  # mypy reads the imports above; a `__getattr__` would hide typos
    __getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)


def connect(endpoint_or_config: str | os.PathLike[str]) -> ModelAccessor:
    """Open a model accessor on a store URL or on a config file.

    A store URL (`sqlite:///path.db`, `postgresql://...`) opens the store with the model
    definitions it remembers. A config file path loads the config, discovers the plugins and
    their models, and opens (or evolves) the store it names, as `xos-runtime run` would.
    A core's URL (`http(s)://[user:password@]host:port`), or a config whose
    `accessor.endpoint` is one, gives a `RemoteAccessor` (`xos_runtime.store.remote`): the
    same objects API over the core's REST API, with the models the core serves.
    `accessor.publish_event(topic, value, key=None)` sends a message to the event steps: to
    the store's own log for a store URL, to the config's `event_bus` for a config file.
    Close the accessor with `.close()` when done.
    """
    target = os.fspath(endpoint_or_config)
    if target.startswith(("http://", "https://")):
        from xos_runtime.store.remote import open_remote

        return open_remote(target)  # type: ignore[return-value]
    if "://" in target:
        from xos_runtime.store import open_store

        return open_store(target)
    from xos_runtime.config import load_config

    settings = load_config(target)
    if settings.accessor.endpoint.startswith(("http://", "https://")):
        from xos_runtime.store.remote import open_settings

        return open_settings(settings)  # type: ignore[return-value]
    from xos_runtime.host import Runtime

    return Runtime.load(settings).accessor
