"""Alias of `xossynchronizer.event_steps.eventstep`."""

from xossynchronizer.event_steps.eventstep import EventStep, XOSKafkaMessage

__all__ = ["EventStep", "XOSKafkaMessage"]
