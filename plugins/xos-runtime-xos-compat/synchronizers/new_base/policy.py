"""Alias of `xossynchronizer.model_policies.policy`."""

from xossynchronizer.model_policies.policy import Policy

__all__ = ["Policy"]
