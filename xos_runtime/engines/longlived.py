"""Keeping a pass's objects out of the cyclic garbage collector's way.

A pass reads its objects (tens of thousands of model objects and their bookkeeping) and holds
them until it ends. While it reads, the heap grows by a quarter again and again, and each time
the collector walks all of it: nine full collections, 0.8 s, in a pass of 100,000 objects,
which find nothing to free (everything read stays alive). So inside `long_lived()` the
collector pauses until `keep()`, which freezes what is alive (`gc.freeze`) and resumes it:
collections then walk only what was allocated after. The frozen objects go back to the
collector when the last block ends, so cycles made meanwhile are collected then; memory is
freed by reference counting as always. Engines run passes in several threads at once: the
collector runs again when no block is reading, and unfreezes when none is left.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["long_lived"]

_lock = threading.Lock()
_blocks = 0
_reading = 0
#: Whether the collector was enabled when the first block paused it (restored after).
_was_enabled = True


def _pause() -> None:
    global _reading, _was_enabled
    if _reading == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _reading += 1


def _resume() -> None:
    global _reading
    _reading -= 1
    if _reading == 0 and _was_enabled:
        gc.enable()


@contextmanager
def long_lived() -> Iterator[Callable[[], None]]:
    """A block that reads long-lived objects, then calls `keep()` once and works with them."""
    global _blocks
    reading = True

    def keep() -> None:
        nonlocal reading
        with _lock:
            if reading:
                reading = False
                gc.freeze()
                _resume()

    with _lock:
        _blocks += 1
        _pause()
    try:
        yield keep
    finally:
        with _lock:
            if reading:
                _resume()
            _blocks -= 1
            if _blocks == 0:
                gc.unfreeze()
