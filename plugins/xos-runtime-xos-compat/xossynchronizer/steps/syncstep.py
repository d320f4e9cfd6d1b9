"""`xossynchronizer.steps.syncstep`: the XOS `SyncStep` and its exceptions, over xos-runtime.

`SyncStep` is an `xos_runtime.SyncStep` (the runtime's sync engine runs it) that also
accepts XOS's ways: `provides` standing in for `observes`, model classes named before the
store exists, `fetch_pending(self, deletion)` overrides, constructors without `log`, and
structlog-style `self.log`. The exceptions are the runtime's: a `DeferredException` defers
(backend_code 0), an `InnocuousException` ends in backend_code 1, anything else is an error
(backend_code 2, its message in backend_status).
"""

from __future__ import annotations

from typing import Any, ClassVar

from xos_runtime_xos_compat.adapt import XOSPluginMixin

import xos_runtime
from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException

__all__ = [
    "DeferredException",
    "FailedDependency",
    "InnocuousException",
    "PermanentException",
    "SyncStep",
]


class FailedDependency(Exception):
    """XOS: an object whose dependency failed. Raised by a step, it is an error (code 2)."""


class SyncStep(XOSPluginMixin, xos_runtime.SyncStep):
    """Base class of XOS sync steps (`sync_record`, `delete_record`, `observes`/`provides`)."""

    #: XOS: the models the step provides; stands for `observes` when that is not set.
    provides: ClassVar[list[Any]] = []
    #: XOS legacy, ignored.
    requested_interval: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.observes and cls.provides:
            cls.observes = list(cls.provides)
