"""The store layer: the Django-like accessor over SQLite or PostgreSQL, with change tracking.

`open_store(endpoint, models)` opens a store and returns its `ModelAccessor`; engines mark
their work with `acting_as(...)` so that saves move the right timestamps.
"""

from xos_runtime.store.accessor import ModelAccessor, open_store
from xos_runtime.store.attempts import Attempts, EventAttempts
from xos_runtime.store.claims import ClaimKey, Claims, new_owner
from xos_runtime.store.notify import ChangeHub, Subscription
from xos_runtime.store.objects import ModelObject
from xos_runtime.store.query import Manager, QuerySet
from xos_runtime.store.sqlstore import SqlStore, normalise_url
from xos_runtime.store.tracking import CallerKind, MonotonicClock, acting_as, current_caller
from xos_runtime.store.values import parse_text

__all__ = [
    "Attempts",
    "CallerKind",
    "ChangeHub",
    "ClaimKey",
    "Claims",
    "EventAttempts",
    "Manager",
    "ModelAccessor",
    "ModelObject",
    "MonotonicClock",
    "QuerySet",
    "SqlStore",
    "Subscription",
    "acting_as",
    "current_caller",
    "new_owner",
    "normalise_url",
    "open_store",
    "parse_text",
]
