"""Alias of `xossynchronizer.pull_steps.pullstep`."""

from xossynchronizer.pull_steps.pullstep import PullStep

__all__ = ["PullStep"]
