"""The event engine: hands each message of the event bus to the event steps that subscribe to it.

Differences from the original (reference 4.2 and 8.C4/C5):

* every event step has a consumer group of its own, ``<config name>.<entry point name>``
  (the class name for a step of `event_steps_dir`), so two steps on one topic both see every
  message; a group with no committed offset starts at the earliest message;
* delivery is at least once: offsets are committed only after `process_event` returned, or
  after its failure was dealt with, never automatically;
* a handler that raises is logged (one line; the traceback at DEBUG), reported through
  `xos_runtime_event_outcome`, and retried with the backoff of `events.backoff`: one message
  gets at most `events.max_attempts` calls in all (default 3). Then it is
  skipped (committed), or first sent to `events.dead_letter_topic` when that is set, with
  the `dead_letter_headers`, so that one poison message cannot block its partition for
  ever. `PermanentException` skips it at once; `DeferredException` retries the same
  message after its `delay` (or the first backoff step) without using up an attempt. While
  a message waits, its partition is paused: later messages of that partition wait behind
  it (order is kept), other partitions go on;
* failed calls are counted in the store (`EventAttempts`), per consumer group and message,
  not in memory: a message delivered again after a restart, or to another member of the
  group after a rebalance, gets only the calls it has left, and waits for the retry time
  the store says. The rows go once the message is committed. (A process that dies during
  a call has not counted it: that call may be made again, as any at-least-once delivery.)
* bus errors (a broker that is away) never end the engine: the first of a row is logged as
  a warning, the next ones at DEBUG, and the consumer polls (or is created) again after a
  short pause.

Handlers run as the "event" caller (`acting_as("event")`): a save of an existing object moves
no timestamp unless it passes `always_update_timestamp=True`, so it does not make the object
pending for sync steps; objects it creates are pending like any other new object.

`serve()` runs one consumer thread per step. A pass (`--once`, `--until-idle`) polls what is
available now, handles it and commits; it reports the messages it handled as `attempted`, so
`--until-idle` goes on while messages arrive.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import attrs

from xos_runtime.config import EventSettings
from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.events.bus import Consumer, EventBus, Subscription
from xos_runtime.engines.events.delivery import Deliveries, RetryRules
from xos_runtime.engines.outcome import Outcome, classify, success
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.sink import OutcomeSink
from xos_runtime.engines.steplog import lazy_log
from xos_runtime.steps import Event, EventStep
from xos_runtime.store import Key, ModelAccessor, acting_as

__all__ = ["EventEngine", "group_id"]

#: Seconds to wait before creating a consumer again or polling again after a bus error.
RECONNECT_DELAY = 1.0

#: Longest time (seconds) one pass of a step goes on polling while messages keep coming.
PASS_BUDGET = 1.0


def group_id(config_name: str, step_name: str) -> str:
    """The consumer group of an event step."""
    return f"{config_name}.{step_name}"


@attrs.define(eq=False)
class _StepState:
    """One event step: its group, its consumer (created on first use) and its messages."""

    name: str
    cls: type[EventStep]
    group: str
    subscription: Subscription
    deliveries: Deliveries
    consumer: Consumer | None = None
    lock: threading.Lock = attrs.field(factory=threading.Lock)


class EventEngine(LoopEngine):
    """Runs `EventStep.process_event` for the messages of the bus (module docstring).

    `steps` are `(name, class)` pairs; `name` (the entry point's name) makes the step's
    consumer group with `group_prefix` (the config's `name`).
    """

    name = "events"

    def __init__(
        self,
        accessor: ModelAccessor,
        steps: Sequence[tuple[str, type[EventStep]]],
        bus: EventBus,
        *,
        group_prefix: str,
        settings: EventSettings | None = None,
        serve_poll: float = 1.0,
        outcomes: OutcomeSink | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ):
        super().__init__(
            accessor, workers=max(1, len(steps)), poll_interval=serve_poll, clock=clock
        )
        self.bus = bus
        self.settings = settings or EventSettings()
        dead_letter_topic = self.settings.dead_letter_topic
        self.outcomes = outcomes
        self.rand = rand
        self._failing: set[str] = set()  # steps whose last bus operation failed
        rules = RetryRules(self.settings, bus, clock, rand)
        self.states: list[_StepState] = []
        for name, cls in steps:
            group = group_id(group_prefix, name)
            subscription = Subscription.of(cls.topics, cls.pattern)
            deliveries = Deliveries(
                name,
                group,
                rules,
                accessor.event_attempts(group),
                call=self._caller(name, cls),
                observer=functools.partial(self._observer, cls),
                bus_error=functools.partial(self._bus_error, name),
            )
            self.states.append(_StepState(name, cls, group, subscription, deliveries))
            if dead_letter_topic and subscription.matches(dead_letter_topic):
                self._log.bind(step=name).warning(
                    "event step {} reads the dead letter topic {}: what it skips comes back to it",
                    name,
                    dead_letter_topic,
                )

    # -- consumers ------------------------------------------------------------------------------

    def _bus_error(self, name: str, text: str, *args: object) -> None:
        """Log a bus error of step `name`: a warning for the first of a row, then at DEBUG
        until the bus works again (a broker that is away is one story, not a line a second)."""
        log = self._log.bind(step=name)
        if name in self._failing:
            log.debug(text, *args)
        else:
            log.warning(text + " (the next bus errors of this step at DEBUG until it works)", *args)
            self._failing.add(name)

    def _consumer(self, state: _StepState) -> Consumer | None:
        if state.consumer is None:
            try:
                state.consumer = self.bus.consumer(state.group, state.subscription)
            except Exception as exc:
                self._bus_error(
                    state.name,
                    "cannot open a consumer for group {} ({}): {}; retrying",
                    state.group,
                    state.subscription,
                    exc,
                )
                return None
            state.deliveries.new_consumer()
            self._log.bind(step=state.name).debug(
                "consumer group {} subscribed to {}", state.group, state.subscription
            )
        return state.consumer

    def _close_consumer(self, state: _StepState) -> None:
        consumer, state.consumer = state.consumer, None
        if consumer is None:
            return
        try:
            consumer.close()
        except Exception as exc:
            self._log.bind(step=state.name).warning("closing the consumer failed: {}", exc)

    # -- one poll of one step -------------------------------------------------------------------

    def _poll_once(
        self, state: _StepState, timeout: float, skip: set[Key], report: PassReport
    ) -> bool:
        """Poll `state`'s consumer once, handle and commit; False after a bus error."""
        consumer = self._consumer(state)
        if consumer is None:
            return False
        state.deliveries.resume_due(consumer, skip, report)
        if report.next_run is not None:  # wake for the earliest retry
            timeout = min(timeout, max(0.0, report.next_run - self.clock()))
        try:
            events = consumer.poll(timeout)
        except Exception as exc:
            self._bus_error(state.name, "polling {} failed: {}; retrying", state.group, exc)
            return False
        self._failing.discard(state.name)
        if events and not self.stopping:
            # Messages polled after stop() are left uncommitted: they are delivered again.
            # Handlers run as the "event" caller (set once for the batch, not per message).
            with acting_as("event"):
                state.deliveries.handle(consumer, events, report)
        return True

    def _caller(self, name: str, cls: type[EventStep]) -> Callable[[Event], Outcome]:
        """What calls `process_event` of step `name` for one message, on a new instance
        (inside `acting_as("event")`, entered per batch)."""
        accessor, log, monotonic = self.accessor, self._log.bind(step=name), time.monotonic

        def call(event: Event) -> Outcome:
            step_log = lazy_log(
                log, topic=event.topic, partition=event.partition, offset=event.offset
            )
            step = cls(model_accessor=accessor, log=step_log)
            start = monotonic()
            try:
                step.process_event(event)  # as the "event" caller: see `_poll_once`
            except Exception as exc:
                duration = monotonic() - start
                # one line per failure is logged by the caller; the traceback only at DEBUG
                step_log.opt(exception=exc).debug("process_event raised {}", type(exc).__name__)
                return classify(exc, False, duration, False, None, call="process_event")
            return success(monotonic() - start)

        return call

    def _observer(self, cls: type[EventStep]) -> Callable[[Event, Outcome], None]:
        """What reports the outcomes of a batch of `cls`'s messages to the outcome hook.
        Observers get the class, as from every engine (an instance lives for one call)."""
        hook = self.outcomes.event_hook() if self.outcomes is not None else None
        return functools.partial(self.report, hook, cls)

    # -- passes and serving ---------------------------------------------------------------------

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        """Handle what each step's consumer has now (waiting at most the bus's `pass_timeout`).

        The steps poll side by side, one worker each, as when serving: a Kafka consumer's
        first poll waits for its group to form, and groups form in parallel.
        """
        report = PassReport()
        if self.stopping:
            return report
        skip = frozenset(exclude)
        self.pool.new_epoch()
        for index, state in enumerate(self.states):
            self.pool.submit(index, self._pass_caller(state, skip))
        remaining = len(self.states)
        while remaining:
            done = self.pool.completions.get()
            if done.epoch != self.pool.epoch:
                continue  # left over from a pass that was interrupted
            remaining -= 1
            if done.error is not None:
                self._log.opt(exception=done.error).error("an event pass failed")
            elif done.result is not None:
                report.merge(done.result)
        return report

    def _pass_caller(self, state: _StepState, skip: frozenset[Key]) -> Callable[[], PassReport]:
        def call() -> PassReport:
            """Poll while messages keep coming, for at most `PASS_BUDGET` seconds: a pass
            of one poll (a few hundred messages) would make `--until-idle` run a round of
            every other engine for each poll."""
            report = PassReport()
            deadline = time.monotonic() + PASS_BUDGET
            with state.lock:
                while not self.stopping:
                    handled = report.attempted
                    if not self._poll_once(state, self.bus.pass_timeout, set(skip), report):
                        break
                    if report.attempted == handled or time.monotonic() >= deadline:
                        break
            return report

        return call

    def serve(self) -> None:
        """One consumer thread per step until `stop()`; each closes its consumer on the way out."""
        threads = [
            threading.Thread(
                target=self._serve_step,
                args=(state,),
                name=f"xos-runtime-events-{state.name}",
                daemon=True,
            )
            for state in self.states
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _serve_step(self, state: _StepState) -> None:
        with state.lock:
            try:
                while not self.stopping:
                    try:
                        ok = self._poll_once(state, self.poll_interval, set(), PassReport())
                    except Exception:  # a bug of ours: log it loudly, never die silently
                        self._log.bind(step=state.name).exception("event consumer failed")
                        ok = False
                    if not ok:
                        self._stopping.wait(RECONNECT_DELAY)
            finally:
                self._close_consumer(state)

    def stop(self) -> None:
        super().stop()
        for state in self.states:
            consumer = state.consumer
            if consumer is not None:
                consumer.wakeup()

    def close(self) -> None:
        self.stop()
        for state in self.states:
            # A serving thread closes its own consumer; one stuck in a handler past the
            # host's grace period keeps it (it is a daemon thread).
            if state.lock.acquire(timeout=1.0):
                try:
                    self._close_consumer(state)
                finally:
                    state.lock.release()
        super().close()
