"""xos-runtime: a fast, observable plugin host that does the job of the XOS Synchronizer.

This module is the public face for plugin authors and scripts (contract section 2):
the base classes to subclass, the exceptions that choose how a failure is treated, the
pluggy `hookimpl` marker, and `connect()` to open a model accessor.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException
from xos_runtime.hookspecs import hookimpl
from xos_runtime.steps import Event, EventStep, ModelPolicy, Policy, PullStep, SyncStep

if TYPE_CHECKING:
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


def connect(endpoint_or_config: str | os.PathLike[str]) -> ModelAccessor:
    """Open a model accessor on a store URL or on a config file.

    A store URL (`sqlite:///path.db`, `postgresql://...`) opens the store with the model
    definitions it remembers. A config file path loads the config, discovers the plugins and
    their models, and opens (or evolves) the store it names, as `xos-runtime run` would.
    Close the accessor with `.close()` when done.
    """
    target = os.fspath(endpoint_or_config)
    if "://" in target:
        from xos_runtime.store import open_store

        return open_store(target)
    from xos_runtime.host import Runtime

    return Runtime.load(target).accessor
