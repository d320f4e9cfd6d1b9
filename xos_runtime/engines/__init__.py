"""The engines: sync, model policies, pull and events, and what they share.

The host (`xos_runtime.host`, `cli`, `observe`) imports from here, never from a submodule.
The layout, top to bottom (a module imports only from the rows below its own; `lint-imports`
checks it):

* `plan` - what the next pass would do, changing nothing (`xos-runtime plan`), asked of the
  engines as `builtin` builds them;
* `builtin` - the built-in engines, registered as a plugin of the hook contract;
* `sync/` (the engine, its object DAG and dispatch), `policy`, `pull`, `events/` (the bus
  protocols, the embedded bus, Kafka, delivery of messages and the engine): one per engine,
  none imports another;
* `base` (the wake-up loop every engine runs), `status` (what `xos-runtime status` reports);
* `pool` (the worker pool), `writer` (batched bookkeeping writes), `register` (the retry
  bookkeeping in `backend_register`), `report` (what a pass did), `sink` (where outcomes go:
  `HookSink` calls the contract's outcome hooks), `progress` (how a long pass goes);
* `retry` (the one retry rule), `outcome` (outcome records and backend codes).

The names are imported on first use (PEP 562 `__getattr__`): `status` and the metrics
endpoint need none of the engines, and no command pays for the pull or event engine (or for
Kafka's client) unless a plugin has such steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xos_runtime.lazy import lazy_names

if TYPE_CHECKING:
    from xos_runtime.engines.base import HELD_ELSEWHERE_RECHECK, LoopEngine
    from xos_runtime.engines.builtin import EngineHost
    from xos_runtime.engines.events.bus import Consumer, EventBus, Subscription
    from xos_runtime.engines.events.connect import open_event_bus
    from xos_runtime.engines.events.engine import EventEngine
    from xos_runtime.engines.events.memory import MemoryBus
    from xos_runtime.engines.outcome import BackendCode, Outcome, OutcomeKind, classify
    from xos_runtime.engines.plan import Plan, make_plan
    from xos_runtime.engines.policy import PolicyEngine
    from xos_runtime.engines.progress import Progress, ShowProgress
    from xos_runtime.engines.pull import PullEngine
    from xos_runtime.engines.report import PassReport
    from xos_runtime.engines.retry import Backoff, Retry, next_retry
    from xos_runtime.engines.sink import HookSink, OutcomeSink
    from xos_runtime.engines.status import (
        ObjectStatus,
        StatusReport,
        collect_status,
        count_states,
        held_back_by,
        state_column,
    )
    from xos_runtime.engines.sync.engine import SyncEngine

__all__ = [
    "HELD_ELSEWHERE_RECHECK",
    "BackendCode",
    "Backoff",
    "Consumer",
    "EngineHost",
    "EventBus",
    "EventEngine",
    "HookSink",
    "LoopEngine",
    "MemoryBus",
    "ObjectStatus",
    "Outcome",
    "OutcomeKind",
    "OutcomeSink",
    "PassReport",
    "Plan",
    "PolicyEngine",
    "Progress",
    "PullEngine",
    "Retry",
    "ShowProgress",
    "StatusReport",
    "Subscription",
    "SyncEngine",
    "classify",
    "collect_status",
    "count_states",
    "held_back_by",
    "make_plan",
    "next_retry",
    "open_event_bus",
    "state_column",
]

#: The module of each public name (relative to this package).
_MODULES = {
    "HELD_ELSEWHERE_RECHECK": ".base",
    "LoopEngine": ".base",
    "EngineHost": ".builtin",
    "Consumer": ".events.bus",
    "EventBus": ".events.bus",
    "Subscription": ".events.bus",
    "open_event_bus": ".events.connect",
    "EventEngine": ".events.engine",
    "MemoryBus": ".events.memory",
    "BackendCode": ".outcome",
    "Outcome": ".outcome",
    "Progress": ".progress",
    "ShowProgress": ".progress",
    "OutcomeKind": ".outcome",
    "classify": ".outcome",
    "Plan": ".plan",
    "make_plan": ".plan",
    "PolicyEngine": ".policy",
    "PullEngine": ".pull",
    "PassReport": ".report",
    "Backoff": ".retry",
    "Retry": ".retry",
    "next_retry": ".retry",
    "HookSink": ".sink",
    "OutcomeSink": ".sink",
    "ObjectStatus": ".status",
    "StatusReport": ".status",
    "collect_status": ".status",
    "count_states": ".status",
    "held_back_by": ".status",
    "state_column": ".status",
    "SyncEngine": ".sync.engine",
}


if not TYPE_CHECKING:  # mypy reads the imports above; a `__getattr__` would hide typos
    __getattr__, __dir__ = lazy_names(__name__, _MODULES, __all__)
