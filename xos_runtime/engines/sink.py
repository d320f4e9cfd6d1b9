"""Where the engines send what became of each unit of work: one sink for all four engines.

Every engine reports each outcome to the `OutcomeSink` it was given, right after the outcome
is decided (the sync engine's status write may follow in the same batch). The built-in
engines share one `HookSink`, which passes each outcome on to the contract's outcome hooks
(`xos_runtime_sync_outcome`, `xos_runtime_policy_outcome`, `xos_runtime_event_outcome`,
`xos_runtime_pull_outcome`) with their names and arguments. The engine calls the sink through
`LoopEngine.report`, so an observer's exception is logged and ignored, never the engine's end.
"""

from __future__ import annotations

import functools
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

    def event_hook(self) -> Callable[[type[EventStep], Event, Outcome], None]:
        """`event` as one callable for the messages of a batch, over the implementations
        registered when it is made (it leaves out `event`'s look-up at each call; plugins
        added or removed meanwhile are seen from the next batch)."""
        ...

    def pull(self, step: type[PullStep], outcome: Outcome) -> None:
        """One `pull_records` call returned, failed or timed out."""
        ...


class _Direct:
    """One outcome hook, called as pluggy would call it (every implementation, last
    registered first, an exception stopping the rest) but without pluggy's per-call
    machinery, which costs more than the built-in counters it reaches (the hook runs once
    per object or message). It is called with the hook's arguments in the order of
    `argnames`; an implementation that takes them in that order is called with them as
    they are, one that takes fewer or another order gets its own. A hook with a wrapper
    implementation goes through pluggy. The implementations are looked up again whenever a
    plugin is added or removed."""

    def __init__(self, caller: pluggy.HookCaller, argnames: tuple[str, ...]):
        self.caller = caller
        self.argnames = argnames
        self.seen: list[Any] | None = None
        #: (function, None) for an implementation that takes every argument in order, else
        #: (function, the positions of the arguments it takes); None: through pluggy
        self.calls: list[tuple[Callable[..., object], tuple[int, ...] | None]] | None = None

    def __call__(self, *args: Any) -> None:
        self._current()
        if self.calls is None:
            self.caller(**dict(zip(self.argnames, args, strict=True)))
        else:
            _each(self.calls, *args)

    def now(self) -> Callable[..., None]:
        """The hook as one callable over the implementations registered now (for a batch
        of calls): the one implementation itself when there is one that takes every
        argument in order (most often the built-in counters alone)."""
        self._current()
        calls = self.calls
        if calls is None:
            return self  # through pluggy, which looks them up at each call
        if len(calls) == 1 and calls[0][1] is None:
            return calls[0][0]  # type: ignore[return-value]  # an outcome hook returns None
        return functools.partial(_each, calls)

    def _current(self) -> None:
        impls = self.caller.get_hookimpls()
        if impls == self.seen:
            return
        self.seen = impls
        if any(i.hookwrapper or i.wrapper for i in impls):
            self.calls = None
            return
        index = {name: i for i, name in enumerate(self.argnames)}
        self.calls = [
            (
                i.function,
                None if tuple(i.argnames) == self.argnames else tuple(index[n] for n in i.argnames),
            )
            for i in reversed(impls)
        ]  # a new list: what `now` gave out stays as it was


def _each(calls: list[tuple[Callable[..., object], tuple[int, ...] | None]], *args: Any) -> None:
    for function, positions in calls:
        if positions is None:
            function(*args)
        else:
            function(*[args[i] for i in positions])


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

    def event_hook(self) -> Callable[[type[EventStep], Event, Outcome], None]:
        return self._event.now()

    def pull(self, step: type[PullStep], outcome: Outcome) -> None:
        self._pull(step, outcome)
