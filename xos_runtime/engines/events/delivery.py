"""What becomes of each message an event step's consumer polls: its calls, its retries, its
dead letter, and the commit.

One `Deliveries` per event step. A polled batch is handled in offset order per partition:

* a message that succeeds is committed;
* one that fails is held: its partition is sought back to it and paused until its retry
  time (`events.backoff`, by the rule of `retry.py`), so later messages of that partition
  wait behind it while other partitions go on. `DeferredException` holds it without using
  up an attempt;
* after `events.max_attempts` failed calls, or at once on `PermanentException`, it is
  skipped: sent to `events.dead_letter_topic` if set (and held, without another call,
  until that send works), then committed.

Failed calls are counted in the store (`EventAttempts`), and each batch first reads what
the store knows of its messages: a message delivered again after a restart or a rebalance
gets only the calls it has left, and not before the retry time stored with them. Rows go
once their message is committed.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from loguru import logger

from xos_runtime.config import EventSettings
from xos_runtime.engines.events.bus import Consumer, EventBus, TopicPartition
from xos_runtime.engines.outcome import Outcome
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.retry import Retry, next_retry
from xos_runtime.steps import Event
from xos_runtime.store import Attempts, EventAttempts, Key
from xos_runtime.store.attempts import MessageKey

__all__ = [
    "ATTEMPTS_HEADER",
    "ERROR_HEADER",
    "Deliveries",
    "RetryRules",
    "dead_letter_headers",
    "earliest",
]

#: Header of a dead letter: the message of the last error.
ERROR_HEADER = "xos-runtime-error"
#: Header of a dead letter: the failed calls of `process_event`, an integer as text.
ATTEMPTS_HEADER = "xos-runtime-attempts"

#: Calls `process_event` for one message (on a new instance of the step): the outcome.
Caller = Callable[[Event], Outcome]


def dead_letter_headers(event: Event, error: str, attempts: int) -> list[tuple[str, bytes]]:
    """The headers of `event`'s dead letter: its own (less the runtime's headers of an
    earlier dead letter), then `ERROR_HEADER` and `ATTEMPTS_HEADER`."""
    ours = {ERROR_HEADER, ATTEMPTS_HEADER}
    headers = [(k, v) for k, v in event.headers or () if k not in ours]
    return [*headers, (ERROR_HEADER, error.encode()), (ATTEMPTS_HEADER, str(attempts).encode())]


def earliest(report: PassReport, when: float) -> None:
    """Note in `report` that something is due at `when` (epoch seconds)."""
    report.next_run = when if report.next_run is None else min(report.next_run, when)


@attrs.frozen
class RetryRules:
    """The engine's rules for failing messages (`events.*` in the config)."""

    settings: EventSettings
    #: where dead letters are sent (the bus the messages come from)
    bus: EventBus
    clock: Callable[[], float]
    rand: Callable[[], float]

    def retry(self, failures: int, *, deferred: bool = False, delay: float | None = None) -> Retry:
        """The retry after one more failure, `failures` counted ones before it (`retry.py`)."""
        return next_retry(
            self.settings.backoff,
            failures,
            now=self.clock(),
            deferred=deferred,
            delay=delay,
            rand=self.rand,
        )


@attrs.define
class _Held:
    """A message that waits for its retry (or for its dead letter to be sent); its partition
    is paused meanwhile."""

    offset: int
    attempts: int
    next_run: float
    key: Key
    #: Set once the message is to be skipped but its dead letter could not be sent yet: the
    #: last error, for the dead letter; `process_event` is not called again.
    give_up: str | None = None
    #: Failed sends of its dead letter (for their backoff).
    sends: int = 0


class Deliveries:
    """The messages of one event step (consumer group `group`): see the module docstring.

    `call` runs `process_event`; `observer` gives, at the start of each batch, what gets each
    call's outcome (the outcome hook, looked up once per batch); `bus_error` logs a failed
    commit.

    Most messages succeed at their first call: `handle` takes them on a short path (a call,
    its outcome, the offset to commit) and leaves the rest to `_deliver`.
    """

    def __init__(
        self,
        name: str,
        group: str,
        rules: RetryRules,
        attempts: EventAttempts,
        *,
        call: Caller,
        observer: Callable[[], Callable[[Event, Outcome], None]],
        bus_error: Callable[..., None],
    ):
        self.name = name
        self.group = group
        self.rules = rules
        self.attempts = attempts
        self.call = call
        self.observer = observer
        self._observe: Callable[[Event, Outcome], None] = lambda event, outcome: None
        self.bus_error = bus_error
        self.held: dict[TopicPartition, _Held] = {}
        #: Partitions whose committed messages may still have rows in the attempts table.
        self.dirty: set[TopicPartition] = set()
        #: Partitions committed since the consumer was made (rows that a previous process
        #: left below the committed offset are dropped on the first commit).
        self.swept: set[TopicPartition] = set()
        #: Per partition, the offset this consumer delivers next if nothing moved it: a
        #: batch that starts there continues what this process handled, and what the store
        #: knows of it is known here already.
        self.position: dict[TopicPartition, int] = {}
        self._log = logger.bind(engine="events", step=name)

    def new_consumer(self) -> None:
        """The step has a new consumer: read the store again for what it delivers first,
        and sweep stale rows again on its first commits."""
        self.swept.clear()
        self.position.clear()

    def resume_due(self, consumer: Consumer, skip: set[Key], report: PassReport) -> None:
        """Resume the partitions whose held message is due (not those failed in this
        `--until-idle` run, `skip`); note the earliest retry in `report`."""
        now = self.rules.clock()
        for tp, held in self.held.items():
            if held.key in skip:
                continue
            if held.next_run <= now:
                consumer.resume(tp)
            else:
                earliest(report, held.next_run)

    def handle(self, consumer: Consumer, events: list[Event], report: PassReport) -> None:
        """Deal with a polled batch and commit what may be committed."""
        stored = self._stored(events)
        self._observe = observe = self.observer()
        held, call = self.held, self.call
        commits: dict[TopicPartition, int] = {}
        blocked: set[TopicPartition] = set()
        succeeded = 0  # on the short path: counted into `report` once, at the end
        try:
            for event in events:
                # (a bus's messages have a partition and an offset)
                tp: TopicPartition = (event.topic, event.partition)  # type: ignore[assignment]
                offset: int = event.offset  # type: ignore[assignment]
                if tp in blocked:
                    continue  # behind a message that waits
                if not stored and tp not in held:  # neither known to the store nor held
                    outcome = call(event)
                    if outcome.kind == "success":
                        succeeded += 1
                        commits[tp] = offset + 1
                        observe(event, outcome)
                        continue
                    dealt = self._outcome(consumer, event, outcome, 0, report)
                else:
                    dealt = self._deliver(consumer, event, stored, report)
                if dealt:
                    commits[tp] = offset + 1
                else:
                    blocked.add(tp)
                    self.position[tp] = offset  # sought back to it
        except BaseException:
            # A bug of ours (or an interrupt) mid-batch: what was not dealt with must be
            # fetched again, not passed over by the consumer's position.
            first: dict[TopicPartition, int] = {}
            for event in events:
                first.setdefault((event.topic, event.partition), event.offset)  # type: ignore[arg-type]
            for tp, offset in first.items():
                if tp not in blocked:
                    self.position[tp] = commits.get(tp, offset)
                    consumer.seek(tp, self.position[tp])
            raise
        finally:
            if succeeded:
                report.attempted += succeeded
                report.succeeded += succeeded
                report.outcomes["success"] += succeeded
            for tp, offset in commits.items():
                if tp not in blocked:
                    self.position[tp] = offset
            self._commit(consumer, commits)

    # -- one message ------------------------------------------------------------------------------

    def _stored(self, events: list[Event]) -> dict[MessageKey, Attempts]:
        """What the store knows of the failed calls of `events` (from an earlier run, or
        another member of the group before a rebalance), for the partitions whose batch
        does not continue where this process left them."""
        spans: dict[TopicPartition, tuple[int, int]] = {}
        continued: set[TopicPartition] = set()
        for e in events:
            assert e.partition is not None and e.offset is not None
            tp = (e.topic, e.partition)
            if tp in continued:
                continue
            if tp not in spans and self.position.get(tp) == e.offset:
                continued.add(tp)  # polled where this process left it: known here already
                continue
            first, last = spans.get(tp, (e.offset, e.offset))
            spans[tp] = (min(first, e.offset), max(last, e.offset))
        try:
            stored = self.attempts.load(spans)
        except Exception as exc:
            self._log.warning(
                "cannot read the attempts of {} messages from the store: {}", len(events), exc
            )
            return {}
        self.dirty.update((topic, partition) for topic, partition, _ in stored)
        return stored

    def _deliver(
        self,
        consumer: Consumer,
        event: Event,
        stored: dict[MessageKey, Attempts],
        report: PassReport,
    ) -> bool:
        """Call the step for `event` (or skip it, or hold it back); True when it may be
        committed, False when its partition must wait."""
        assert event.partition is not None and event.offset is not None
        tp = (event.topic, event.partition)
        held = self.held.get(tp)
        if held is not None and held.offset < event.offset:
            self.held.pop(tp)  # dealt with elsewhere (another member, before a rebalance)
            held = None
        if held is not None and held.offset != event.offset:
            held = None  # an earlier message again (a commit was lost): still held after it
        known = stored.get((event.topic, event.partition, event.offset))
        if known is not None:  # failed before: in an earlier run, or in another member
            if held is None:
                held = _Held(event.offset, known.attempts, known.next_run, self._key(event))
            held.attempts = max(held.attempts, known.attempts)
            if held.attempts >= self.rules.settings.max_attempts and held.give_up is None:
                held.give_up = known.last_error
        if held is not None:
            if held.next_run > self.rules.clock():
                # delivered before its time (a rebalance or a restart lost the pause)
                self._hold(consumer, event, held, report)
                return False
            if held.give_up is not None:
                # its calls are used up: skip it without calling the step again
                return self._give_up(consumer, event, held, held.give_up, report)
        attempts = held.attempts if held is not None else 0
        return self._outcome(consumer, event, self.call(event), attempts, report)

    def _outcome(
        self, consumer: Consumer, event: Event, outcome: Outcome, attempts: int, report: PassReport
    ) -> bool:
        """Count and observe the outcome of `event`'s call (`attempts` failed calls before
        it) and deal with it; True when `event` may be committed."""
        report.attempted += 1
        report.outcomes[outcome.kind] += 1
        try:
            return self._after_call(consumer, event, outcome, attempts, report)
        finally:
            self._observe(event, outcome)

    def _after_call(
        self, consumer: Consumer, event: Event, outcome: Outcome, attempts: int, report: PassReport
    ) -> bool:
        assert event.partition is not None and event.offset is not None
        tp = (event.topic, event.partition)
        if outcome.ok:
            report.succeeded += 1
            self.held.pop(tp, None)
            if attempts:
                self.dirty.add(tp)
            return True
        key = self._key(event)
        report.failed.add(key)
        if outcome.kind == "deferred":
            retry = self.rules.retry(attempts, deferred=True, delay=outcome.retry_at)
            delay, next_run = retry.wait, retry.at
            self._log.bind(topic=event.topic, partition=event.partition).info(
                "{}: message at {} deferred: {}; again in {:.3g}s",
                self.name,
                _where(event),
                outcome.message,
                delay,
            )
            self._hold(consumer, event, _Held(event.offset, attempts, next_run, key), report)
            return False
        if outcome.kind == "permanent":
            held = _Held(event.offset, attempts + 1, self.rules.clock(), key)
            return self._give_up(consumer, event, held, outcome.message, report)
        retry = self.rules.retry(attempts)
        delay, next_run = retry.wait, retry.at
        attempts = self._count_failure(event, outcome.message, next_run, attempts)
        held = _Held(event.offset, attempts, next_run, key)
        if attempts >= self.rules.settings.max_attempts:
            return self._give_up(consumer, event, held, outcome.message, report)
        self._log.bind(topic=event.topic, partition=event.partition).warning(
            "{}: message at {} failed (attempt {} of {}): {}; retrying in {:.3g}s",
            self.name,
            _where(event),
            attempts,
            self.rules.settings.max_attempts,
            outcome.message,
            delay,
        )
        self._hold(consumer, event, held, report)
        return False

    def _count_failure(self, event: Event, error: str, next_run: float, attempts: int) -> int:
        """Store one more failed call of `event`; its failed calls in all (across restarts
        and group members), or `attempts + 1` if the store cannot say."""
        assert event.partition is not None and event.offset is not None
        self.dirty.add((event.topic, event.partition))
        try:
            return self.attempts.failed(
                (event.topic, event.partition, event.offset), error, next_run
            )
        except Exception as exc:
            self._log.warning(
                "cannot store the attempts of the message at {}: {}", _where(event), exc
            )
            return attempts + 1

    def _hold(self, consumer: Consumer, event: Event, held: _Held, report: PassReport) -> None:
        """Keep `event` for later: its partition is paused and will start with it again."""
        assert event.partition is not None
        tp = (event.topic, event.partition)
        self.held[tp] = held
        consumer.seek(tp, held.offset)
        consumer.pause(tp)
        earliest(report, held.next_run)

    def _give_up(
        self, consumer: Consumer, event: Event, held: _Held, error: str, report: PassReport
    ) -> bool:
        """Skip `event` after its last attempt: send its dead letter if configured (or hold
        it until that works); True when it may be committed."""
        assert event.partition is not None
        attempts = max(held.attempts, 1)
        topic = self.rules.settings.dead_letter_topic
        log = self._log.bind(topic=event.topic, partition=event.partition)
        sent = ""
        if topic:
            try:
                headers = dead_letter_headers(event, error, attempts)
                self.rules.bus.publish(topic, event.key, event.value, headers)
            except Exception as exc:
                held.give_up = error
                retry = self.rules.retry(held.sends)
                held.sends, held.next_run = retry.failures, retry.at
                log.warning(
                    "{}: cannot send the message at {} to the dead letter topic {}: {}; "
                    "retrying in {:.3g}s",
                    self.name,
                    _where(event),
                    topic,
                    exc,
                    retry.wait,
                )
                self._hold(consumer, event, held, report)
                return False
            sent = f"; sent to {topic}"
        log.error(
            "{}: skipping the message at {} after {} attempt(s): {}{}",
            self.name,
            _where(event),
            attempts,
            error,
            sent,
        )
        self.held.pop((event.topic, event.partition), None)
        return True

    def _commit(self, consumer: Consumer, commits: dict[TopicPartition, int]) -> None:
        if not commits:
            return
        try:
            consumer.commit(commits)
        except Exception as exc:  # the messages will be delivered again: at least once
            self.bus_error(
                "committing offsets of {} failed: {}; those messages will come again",
                self.group,
                exc,
            )
            return
        sweep = {tp: n for tp, n in commits.items() if tp in self.dirty or tp not in self.swept}
        if not sweep:
            return
        try:
            self.attempts.forget(sweep)
        except Exception as exc:  # stale rows are in nobody's way: try again next time
            self._log.debug("cannot drop the attempts of committed messages: {}", exc)
            return
        self.dirty.difference_update(sweep)
        self.swept.update(sweep)

    def _key(self, event: Event) -> Key:
        assert event.offset is not None
        return (f"{self.group}:{event.topic}:{event.partition}", event.offset)


def _where(event: Event) -> str:
    return f"{event.topic}[{event.partition}] offset {event.offset}"
