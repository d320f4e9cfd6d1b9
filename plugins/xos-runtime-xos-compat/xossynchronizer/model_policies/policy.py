"""`xossynchronizer.model_policies.policy.Policy`, over xos-runtime's `ModelPolicy`.

`self.logger` and `self.log` are the same structlog-style logger; `self.model` is the policed
model class (XOS set it on the class at load time).
"""

from __future__ import annotations

from typing import Any

from xos_runtime_xos_compat.adapt import XOSPluginMixin

import xos_runtime

__all__ = ["Policy"]


class Policy(XOSPluginMixin, xos_runtime.ModelPolicy):
    """Base class of XOS model policies (`model_name`, `handle_create/update/delete`)."""

    @property
    def model(self) -> Any:
        return self._require_accessor().get_model_class(self.model_name)
