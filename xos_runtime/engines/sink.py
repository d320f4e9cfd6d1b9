"""Where the engines send what became of each unit of work: one sink for all four engines.

Every engine reports each outcome to the `OutcomeSink` it was given, right after the outcome
is decided (the sync engine's status write may follow in the same batch). The built-in
engines share one `HookSink`, which passes each outcome on to the contract's outcome hooks
(`xos_runtime_sync_outcome`, `xos_runtime_policy_outcome`, `xos_runtime_event_outcome`,
`xos_runtime_pull_outcome`) with their names and arguments. The engine calls the sink through
`LoopEngine.report`, so an observer's exception is logged and ignored, never the engine's end.
"""

from __future__ import annotations

from typing import Protocol

import pluggy

from xos_runtime.engines.outcome import Outcome
from xos_runtime.steps import Event, EventStep, ModelPolicy, PullStep, SyncStep
from xos_runtime.store import ModelObject

__all__ = ["HookSink", "OutcomeSink"]


class OutcomeSink(Protocol):
    """What the engines report outcomes to: one method per engine."""

    def sync(self, step: type[SyncStep], obj: ModelObject, outcome: Outcome) -> None:
        """`sync_record` or `delete_record` ran (or the object was held back) for `obj`."""
        ...

    def policy(
        self, policy: type[ModelPolicy], obj: ModelObject, action: str, outcome: Outcome
    ) -> None:
        """The `handle_<action>` of `policy` ran for `obj`."""
        ...

    def event(self, step: type[EventStep], event: Event, outcome: Outcome) -> None:
        """`process_event` handled (or failed to handle) `event`."""
        ...

    def pull(self, step: type[PullStep], outcome: Outcome) -> None:
        """One `pull_records` call returned, failed or timed out."""
        ...


class HookSink:
    """An `OutcomeSink` that calls the contract's outcome hooks of every plugin."""

    def __init__(self, hook: pluggy.HookRelay):
        self.hook = hook

    def sync(self, step: type[SyncStep], obj: ModelObject, outcome: Outcome) -> None:
        self.hook.xos_runtime_sync_outcome(step=step, obj=obj, outcome=outcome)

    def policy(
        self, policy: type[ModelPolicy], obj: ModelObject, action: str, outcome: Outcome
    ) -> None:
        self.hook.xos_runtime_policy_outcome(policy=policy, obj=obj, action=action, outcome=outcome)

    def event(self, step: type[EventStep], event: Event, outcome: Outcome) -> None:
        self.hook.xos_runtime_event_outcome(step=step, event=event, outcome=outcome)

    def pull(self, step: type[PullStep], outcome: Outcome) -> None:
        self.hook.xos_runtime_pull_outcome(step=step, outcome=outcome)
