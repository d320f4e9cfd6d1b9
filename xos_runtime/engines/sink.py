"""Where the engines send what became of each unit of work: one sink for all four engines.

Every engine reports each outcome to the `OutcomeSink` it was given, right after the outcome
is decided (the sync engine's status write may follow in the same batch). The built-in
engines share one `HookSink`, which passes each outcome on to the contract's outcome hooks
(`xos_runtime_sync_outcome`, `xos_runtime_policy_outcome`, `xos_runtime_event_outcome`,
`xos_runtime_pull_outcome`) with their names and arguments. The engine calls the sink through
`LoopEngine.report`, so an observer's exception is logged and ignored, never the engine's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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


class _Direct:
    """One outcome hook, called as pluggy would call it (every implementation, last
    registered first, an exception stopping the rest) but without pluggy's per-call
    machinery, which costs more than the built-in counters it reaches (the hook runs once
    per object or message). A hook with a wrapper implementation goes through pluggy. The
    implementations are looked up again whenever a plugin is added or removed."""

    def __init__(self, caller: pluggy.HookCaller, names: tuple[str, ...]):
        self.caller = caller
        #: The hook's arguments, in the order `__call__` takes them.
        self.names = names
        self.seen: list[Any] | None = None
        #: Each implementation with the positions of the arguments it takes (None: all of
        #: them, in order); None: call through pluggy.
        self.calls: list[tuple[Callable[..., object], tuple[int, ...] | None]] | None = None

    def __call__(self, *args: Any) -> None:
        impls = self.caller.get_hookimpls()
        if impls != self.seen:
            self.seen = impls
            plain = not any(i.hookwrapper or i.wrapper for i in impls)
            self.calls = [self._plan(i) for i in reversed(impls)] if plain else None
        if self.calls is None:
            self.caller(**dict(zip(self.names, args, strict=True)))
            return
        for function, picks in self.calls:
            if picks is None:
                function(*args)
            else:
                function(*[args[i] for i in picks])

    def _plan(self, impl: Any) -> tuple[Callable[..., object], tuple[int, ...] | None]:
        picks = tuple(self.names.index(n) for n in impl.argnames)
        return impl.function, None if picks == tuple(range(len(self.names))) else picks


class HookSink:
    """An `OutcomeSink` that calls the contract's outcome hooks of every plugin."""

    def __init__(self, hook: pluggy.HookRelay):
        self.hook = hook
        self._sync = _Direct(hook.xos_runtime_sync_outcome, ("step", "obj", "outcome"))
        self._policy = _Direct(
            hook.xos_runtime_policy_outcome, ("policy", "obj", "action", "outcome")
        )
        self._event = _Direct(hook.xos_runtime_event_outcome, ("step", "event", "outcome"))
        self._pull = _Direct(hook.xos_runtime_pull_outcome, ("step", "outcome"))

    def sync(self, step: type[SyncStep], obj: ModelObject, outcome: Outcome) -> None:
        self._sync(step, obj, outcome)

    def policy(
        self, policy: type[ModelPolicy], obj: ModelObject, action: str, outcome: Outcome
    ) -> None:
        self._policy(policy, obj, action, outcome)

    def event(self, step: type[EventStep], event: Event, outcome: Outcome) -> None:
        self._event(step, event, outcome)

    def pull(self, step: type[PullStep], outcome: Outcome) -> None:
        self._pull(step, outcome)
