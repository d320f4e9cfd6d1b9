"""Alias of `xossynchronizer.exceptions`."""

from xossynchronizer.exceptions import (
    SynchronizerConfigurationError,
    SynchronizerException,
    SynchronizerProgrammingError,
)

__all__ = [
    "SynchronizerConfigurationError",
    "SynchronizerException",
    "SynchronizerProgrammingError",
]
