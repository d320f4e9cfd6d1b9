"""`xossynchronizer.exceptions`: the synchronizer's own error classes, as XOS 4.0 names them.

Policies import them with `from ...exceptions import *` (fabric-crossconnect's policy does,
through the pre-4.0 path) even when they raise none; they are plain exceptions, so a step or
policy raising one fails with backend_code 2 like any other error.
"""

from __future__ import annotations

__all__ = [
    "SynchronizerConfigurationError",
    "SynchronizerException",
    "SynchronizerProgrammingError",
]


class SynchronizerException(Exception):
    """Base of the synchronizer's errors."""


class SynchronizerProgrammingError(SynchronizerException):
    """A plugin used the framework wrongly."""


class SynchronizerConfigurationError(SynchronizerException):
    """The configuration is wrong."""
