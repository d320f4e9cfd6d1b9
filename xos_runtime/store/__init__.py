"""The store layer: the Django-like accessor over SQLite or PostgreSQL, with change tracking.

`open_store(endpoint, models)` opens a store and returns its `ModelAccessor`; engines mark
their work with `acting_as(...)` so that saves move the right timestamps.
"""

from xos_runtime.store.accessor import ModelAccessor, open_store, policy_pending, sync_pending
from xos_runtime.store.attempts import Attempts, EventAttempts
from xos_runtime.store.claims import (
    ClaimKey,
    Claims,
    HeldClaims,
    Lease,
    OwnerInfo,
    ProcessIdentity,
    RowFilter,
    StoreInUse,
    held_claims,
    read_owners,
)
from xos_runtime.store.health import StoreHealth, retrying, transient
from xos_runtime.store.notify import ChangeHub, Subscription
from xos_runtime.store.objects import Key, ModelObject, RowView
from xos_runtime.store.outcomes import (
    PENDING,
    ClaimRequest,
    ClaimResult,
    OutcomeBatch,
    StatusRestore,
    apply_batch,
)
from xos_runtime.store.query import Manager, QuerySet
from xos_runtime.store.schedule import Schedule
from xos_runtime.store.sqlstore import KeyedWrite, SqlStore, normalise_url
from xos_runtime.store.tracking import CallerKind, MonotonicClock, acting_as, current_caller
from xos_runtime.store.values import parse_text

__all__ = [
    "PENDING",
    "Attempts",
    "CallerKind",
    "ChangeHub",
    "ClaimKey",
    "ClaimRequest",
    "ClaimResult",
    "Claims",
    "EventAttempts",
    "HeldClaims",
    "Key",
    "KeyedWrite",
    "Lease",
    "Manager",
    "ModelAccessor",
    "ModelObject",
    "MonotonicClock",
    "OutcomeBatch",
    "OwnerInfo",
    "ProcessIdentity",
    "QuerySet",
    "RowFilter",
    "RowView",
    "Schedule",
    "SqlStore",
    "StatusRestore",
    "StoreHealth",
    "StoreInUse",
    "Subscription",
    "acting_as",
    "apply_batch",
    "current_caller",
    "held_claims",
    "normalise_url",
    "open_store",
    "parse_text",
    "policy_pending",
    "read_owners",
    "retrying",
    "sync_pending",
    "transient",
]
