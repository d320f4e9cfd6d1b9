"""Outcomes: what happened to one unit of work, as frozen records passed to hooks and status."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any, Literal

import attrs

from xos_runtime.exceptions import DeferredException, InnocuousException, PermanentException

OutcomeKind = Literal[
    "success", "deferred", "innocuous", "permanent", "error", "timeout", "blocked"
]


class BackendCode(IntEnum):
    """`backend_code` and `policy_code` (contract section 5); stored and printed as 0, 1, 2."""

    #: Pending, or deferred (`DeferredException`).
    PENDING = 0
    #: In sync: OK, or an `InnocuousException`.
    OK = 1
    #: An error: a failure, `PermanentException`, or a timeout.
    ERROR = 2


#: The code written for each kind. A blocked object takes the code of the failure that
#: blocked it.
BACKEND_CODES: dict[str, BackendCode] = {
    "success": BackendCode.OK,
    "deferred": BackendCode.PENDING,
    "innocuous": BackendCode.OK,
    "permanent": BackendCode.ERROR,
    "error": BackendCode.ERROR,
    "timeout": BackendCode.ERROR,
}


@attrs.frozen
class Outcome:
    """The result of one `sync_record`/`delete_record` (or policy/event handler) call.

    `message` is `"OK"` on success and the exception's text otherwise; `code` is the
    `backend_code` the runtime writes (a `BackendCode`; for an object that holds its
    dependents back while it waits to retry, the code it has stored); `duration` is the
    call's wall time in seconds; `deleted` tells a deletion from a sync.
    """

    kind: OutcomeKind
    message: str = "OK"
    code: int = BackendCode.OK
    duration: float = 0.0
    deleted: bool = False
    retry_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "success"

    @property
    def failed(self) -> bool:
        """Whether dependents must be held back (everything but success)."""
        return self.kind != "success"


def _success_maker() -> Callable[[float], Outcome]:
    # The slots' own setters: a frozen attrs class's `__init__` goes through
    # `object.__setattr__` by name for each field, which costs about a third more.
    new = object.__new__
    kind, message, code, duration, deleted, retry_at = (
        Outcome.__dict__[a.name].__set__ for a in attrs.fields(Outcome)
    )
    ok = BackendCode.OK

    def success(seconds: float) -> Outcome:
        outcome = new(Outcome)
        kind(outcome, "success")
        message(outcome, "OK")
        code(outcome, ok)
        duration(outcome, seconds)
        deleted(outcome, False)
        retry_at(outcome, None)
        return outcome

    return success


#: `Outcome("success", duration=seconds)`, as `classify` makes it for a call that returned,
#: in about two thirds of the time: for the engines that decide an outcome per message.
success = _success_maker()


def _describe(error: BaseException) -> str:
    """The exception's text; its type where the text alone does not say what went wrong.

    A `KeyError`'s text is only the missing key's repr (`'name'`), so it reads
    `KeyError: 'name'`; an exception without text is named by its type.
    """
    text = str(error)
    if not text:
        return type(error).__name__
    if isinstance(error, KeyError):
        return f"{type(error).__name__}: {text}"
    return text


def failure_line(error: BaseException | None, message: str) -> str:
    """`message` for a log line: with the exception's type in front (`ConnectionError:
    refused`), which the stored status leaves out; as it is when it already says it."""
    if error is None:
        return message
    name = type(error).__name__
    return message if message.startswith(name) else f"{name}: {message}"


def log_failure(log: Any, call: str, error: BaseException | None, message: str) -> None:
    """How every engine tells a failed call: its traceback at DEBUG, then one warning line
    `<call> failed: <Type>: <message>` (`log`: a loguru logger bound to the call)."""
    if error is not None:  # (depth=1: the lines name the engine's module, as before)
        log.opt(exception=error, depth=1).debug("traceback of the failure below")
    log.opt(depth=1).warning("{} failed: {}", call, failure_line(error, message))


def classify(
    error: BaseException | None,
    timed_out: bool,
    duration: float,
    deleted: bool,
    timeout: float | None,
    call: str | None = None,
) -> Outcome:
    """Turn what a call raised (or its timeout) into an `Outcome` (contract section 5).

    `call` names the method in the timeout message (`sync_record`, `handle_create`...).
    """
    if error is None and not timed_out:
        return Outcome("success", "OK", BackendCode.OK, duration, deleted)
    delay: float | None = None
    if timed_out:
        kind: OutcomeKind = "timeout"
        call = call or ("delete_record" if deleted else "sync_record")
        message = f"{call} timed out after {timeout:g}s"
    elif error is None:
        kind, message = "success", "OK"
    else:
        message = _describe(error)
        if isinstance(error, DeferredException):
            kind, delay = "deferred", error.delay
        elif isinstance(error, InnocuousException):
            kind = "innocuous"
        elif isinstance(error, PermanentException):
            kind = "permanent"
        else:
            kind = "error"
    return Outcome(kind, message, BACKEND_CODES[kind], duration, deleted, retry_at=delay)
