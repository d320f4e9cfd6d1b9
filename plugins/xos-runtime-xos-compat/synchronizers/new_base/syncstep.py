"""Alias of `xossynchronizer.steps.syncstep`."""

from xossynchronizer.steps.syncstep import (
    DeferredException,
    FailedDependency,
    InnocuousException,
    PermanentException,
    SyncStep,
)

__all__ = [
    "DeferredException",
    "FailedDependency",
    "InnocuousException",
    "PermanentException",
    "SyncStep",
]
