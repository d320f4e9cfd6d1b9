"""`xossynchronizer.pull_steps.pullstep.PullStep`, over xos-runtime (every 5 s by default)."""

from __future__ import annotations

from typing import Any

from xos_runtime_xos_compat.adapt import XOSPluginMixin

import xos_runtime

__all__ = ["PullStep"]


class PullStep(XOSPluginMixin, xos_runtime.PullStep):
    """Base class of XOS pull steps (`pull_records`); constructed with `model_accessor=`."""

    def __init__(self, model_accessor: Any = None, **kwargs: Any):
        # XOS passes `observed_model` to some pull steps' bases; the runtime ignores it.
        kwargs.pop("observed_model", None)
        super().__init__(model_accessor=model_accessor, **kwargs)
