"""xos-runtime: a fast, observable plugin host that does the job of the XOS Synchronizer.

This module is the public face for plugin authors; everything else is internal.
"""

from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException

__version__ = "0.1.0"

__all__ = [
    "DeferredException",
    "InnocuousException",
    "PermanentException",
]
