"""What the harness records: one `Call` per unit of work, taken from the outcome hooks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

import attrs

from xos_runtime.hookspecs import hookimpl

__all__ = ["Call", "CallRecorder", "EngineName"]

EngineName = Literal["sync", "policy", "event", "pull"]


@attrs.frozen
class Call:
    """One unit of work an engine reported through the outcome hooks.

    * `engine`: `"sync"`, `"policy"`, `"event"` or `"pull"`;
    * `step`: the name of the step or policy class;
    * `method`: what ran: `sync_record`, `delete_record`, `handle_create`, `handle_update`,
      `handle_delete`, `process_event` or `pull_records`;
    * `kind`: the outcome kind: `success`, `deferred`, `innocuous`, `permanent`, `error`,
      `timeout`, or `blocked` (held back by a failed dependency: the step was not called);
    * `message`: `"OK"` or the exception's text; `time`: the harness clock when reported;
    * `model`, `object_id`: the object of a sync or policy call; `topic`, `key`: the message
      of an event call;
    * `step_class`, `outcome`: the class itself and the engines' outcome record.
    """

    engine: EngineName
    step: str
    method: str
    kind: str
    message: str
    time: float
    model: str | None = None
    object_id: int | None = None
    topic: str | None = None
    key: bytes | None = None
    step_class: type = attrs.field(default=object, eq=False, repr=False)
    outcome: Any = attrs.field(default=None, eq=False, repr=False)

    @property
    def called(self) -> bool:
        """Whether the plugin's code ran (every kind but `blocked`)."""
        return self.kind != "blocked"

    @property
    def ok(self) -> bool:
        return self.kind == "success"


def _model_and_id(obj: Any) -> tuple[str | None, int | None]:
    model = getattr(obj, "leaf_model_name", None) or type(obj).__name__
    object_id = getattr(obj, "id", None)
    return model, int(object_id) if object_id is not None else None


class CallRecorder:
    """A plugin of the hook contract that keeps every outcome as a `Call` (thread-safe: the
    hooks run on the engines' workers)."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[Call] = []

    @property
    def records(self) -> list[Call]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def _add(self, call: Call) -> None:
        with self._lock:
            self._records.append(call)

    @hookimpl
    def xos_runtime_sync_outcome(self, step: type, obj: Any, outcome: Any) -> None:
        model, object_id = _model_and_id(obj)
        method = "delete_record" if outcome.deleted else "sync_record"
        self._add(self._call("sync", step, method, outcome, model=model, object_id=object_id))

    @hookimpl
    def xos_runtime_policy_outcome(self, policy: type, obj: Any, action: str, outcome: Any) -> None:
        model, object_id = _model_and_id(obj)
        call = self._call(
            "policy", policy, f"handle_{action}", outcome, model=model, object_id=object_id
        )
        self._add(call)

    @hookimpl
    def xos_runtime_event_outcome(self, step: type, event: Any, outcome: Any) -> None:
        key = event.key
        call = self._call(
            "event",
            step,
            "process_event",
            outcome,
            topic=event.topic,
            key=key.encode() if isinstance(key, str) else key,
        )
        self._add(call)

    @hookimpl
    def xos_runtime_pull_outcome(self, step: type, outcome: Any) -> None:
        self._add(self._call("pull", step, "pull_records", outcome))

    def _call(self, engine: EngineName, cls: type, method: str, outcome: Any, **about: Any) -> Call:
        return Call(
            engine=engine,
            step=cls.__name__,
            method=method,
            kind=str(outcome.kind),
            message=str(outcome.message),
            time=self._clock(),
            step_class=cls,
            outcome=outcome,
            **about,
        )
