"""`xossynchronizer.event_steps.eventstep.EventStep`, over xos-runtime.

A fresh instance handles each message, as in XOS; `process_event` receives an
`XOSKafkaMessage` whose `value` and `key` are text (XOS services `json.loads(event.value)`).
"""

from __future__ import annotations

from xos_runtime_xos_compat.adapt import XOSKafkaMessage, XOSPluginMixin

import xos_runtime

__all__ = ["EventStep", "XOSKafkaMessage"]


class EventStep(XOSPluginMixin, xos_runtime.EventStep):
    """Base class of XOS event steps (`technology`, `topics`, `process_event`)."""
