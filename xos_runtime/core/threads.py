"""Where the core's blocking work runs: the store is synchronous, the server is not.

Each request's store work runs in a thread of one pool (`in_thread`), with the request's
context variables, so that the event loop keeps serving other requests (a change-feed
long poll, another runtime's batch). A plain executor, not Starlette's
`run_in_threadpool`: anyio's hand-over cost a tenth of the core's time under the engines'
requests, every few milliseconds each.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["WORKERS", "in_thread"]

#: Threads of the pool (as many as anyio's default limit).
WORKERS = 40

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="xos-core")
    return _pool


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a worker thread, with this task's context variables."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor(), call)
