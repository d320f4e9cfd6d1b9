"""The exceptions of xos-runtime.

Two families live here:

* what a plugin raises from `sync_record`, `delete_record`, a policy handler or an event
  handler to tell the runtime how to treat a failure (`DeferredException`,
  `InnocuousException`, `PermanentException`);
* what the runtime raises about bad input (`ConfigError`, `ModelError`, `StoreError`,
  `PluginError`). Each message names the file, key, model or plugin at fault, because the
  command line prints `str(exc)` as the whole diagnosis.
"""

from __future__ import annotations


class XosRuntimeError(Exception):
    """Base of the runtime's own errors; `str()` is a complete one-line diagnosis."""


class ConfigError(XosRuntimeError):
    """A configuration file that cannot be used: `FILE: KEY.PATH: what is wrong`."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.message = message
        where = ": ".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ModelError(XosRuntimeError):
    """Model definitions that cannot be used (unknown type, unknown link target, ...)."""


class XprotoSyntaxError(ModelError):
    """An xproto file that does not parse: `FILE:LINE:COLUMN: message`."""

    def __init__(self, message: str, *, file: str, line: int, column: int):
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{file}:{line}:{column}: {message}")


class ModelGraphError(ModelError):
    """The model dependency graph is unusable: a bad model-deps file or a cycle."""


class StoreError(XosRuntimeError):
    """A store operation that was refused; nothing of it was written."""


class StoreAway(StoreError):
    """The store (a core over HTTP) did not answer for now: what was asked may be asked
    again (`store.health.transient` says so to the engines, which wait and retry)."""


class ObjectValidationError(StoreError, ValueError):
    """A value that does not fit its model: unknown field, wrong type, missing link target.

    Also a `ValueError`, as XOS's ORM raised for a value it refused (plugins written for XOS
    catch `ValueError`).
    """


class DoesNotExist(StoreError, IndexError):
    """`get()` found no object.

    Also an `IndexError`, as XOS's ORM raised on a miss (its `get()` was `filter(...)[0]`):
    plugins written for XOS catch `IndexError` around `get()`.
    """


class MultipleObjectsReturned(StoreError):
    """`get()` found more than one object."""


class SchemaChangeRefused(StoreError):
    """The models changed in a way that would lose stored data."""


class PluginError(XosRuntimeError):
    """A plugin that cannot be loaded or used; the message names it and the cause."""


class StepOutcomeException(Exception):
    """Base of the exceptions a plugin raises to choose how its failure is treated."""


class DeferredException(StepOutcomeException):
    """A temporary condition: not an error, retried on a later pass without backoff growth.

    `delay` (seconds), if given, is the earliest time to retry.
    """

    def __init__(self, *args: object, delay: float | None = None):
        super().__init__(*args)
        self.delay = delay


class InnocuousException(StepOutcomeException):
    """A failure that is not an error (`backend_code` 1); retried with backoff."""


class PermanentException(StepOutcomeException):
    """A failure not worth retrying until the object changes again (`backend_code` 2)."""
