"""Checks of a plugin class against its kind and, once the models are known, against them.

Discovery checks the kind of whatever an entry point names (a policy behind
`xos_runtime.sync_steps` never reaches the table); `validate_plugins` runs the other checks
after the models are loaded: a sync step's `observes`, a policy's `model_name`, an event
step's subscription, the numbers of `concurrency`, `timeout` (sync and pull steps) and
`interval`.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Collection, Iterable
from types import ModuleType

import attrs

from xos_runtime.plugins.failures import SKIPPED_BY_CONFIG, FailureLog
from xos_runtime.plugins.table import (
    GROUP_SUFFIXES,
    KIND_BASES,
    PluginInfo,
    PluginKind,
    PluginTable,
    StepKind,
)
from xos_runtime.steps import EventStep, ModelPolicy, PullStep, SyncStep

__all__ = ["ValidationResult", "kind_error", "kind_of", "plugin_problems", "validate_plugins"]


def kind_of(obj: object) -> StepKind | None:
    """The step kind of a plugin class, or None when it subclasses none of the base classes."""
    if isinstance(obj, type):
        for kind, base in KIND_BASES.items():
            if issubclass(obj, base):
                return kind
    return None


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "AEIOU" else f"a {noun}"


def _what(obj: object) -> str:
    kind = kind_of(obj)
    if kind is not None:
        return f"{_a(KIND_BASES[kind].__name__)} subclass"
    if isinstance(obj, ModuleType):
        return "a module"
    if isinstance(obj, type):
        return "a class that subclasses none of SyncStep, EventStep, PullStep, ModelPolicy"
    if callable(obj):
        return f"a {type(obj).__name__}, not a class"
    return f"a {type(obj).__name__} object"


def kind_error(kind: PluginKind, obj: object) -> str | None:
    """Why `obj` cannot be a plugin of `kind`, or None when it can."""
    if kind == "hooks":
        actual = kind_of(obj)
        if actual is None:
            return None
        return (
            f"is {_what(obj)}, not a module of hook implementations "
            f"(declare it in the *.{GROUP_SUFFIXES[actual]} group)"
        )
    base = KIND_BASES[kind]
    if isinstance(obj, type) and issubclass(obj, base):
        if obj is base:
            return f"is the {base.__name__} base class itself, not a subclass of it"
        return None
    actual = kind_of(obj)
    hint = f" (declare it in the *.{GROUP_SUFFIXES[actual]} group)" if actual else ""
    return f"is not {_a(base.__name__)} subclass: it is {_what(obj)}{hint}"


def _unknown_model(what: str, name: str, model_names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(model_names), n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif model_names:
        known = sorted(model_names)
        shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        hint = f"known models: {shown}"
    else:
        hint = "no models are defined"
    return f"{what} unknown model {name!r} ({hint})"


def _positive_number(value: object, *, integer: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind) and value > 0  # type: ignore[operator]


def _sync_step_problems(cls: type[SyncStep], model_names: Collection[str] | None) -> list[str]:
    problems = []
    try:
        observed = cls.observed_model_names()
    except TypeError as exc:
        problems.append(str(exc))
        observed = []
    else:
        if not observed:
            problems.append("has no `observes`: set it to the model (or models) the step syncs")
    if model_names is not None:
        problems += [
            _unknown_model("observes", n, model_names) for n in observed if n not in model_names
        ]
    if cls.concurrency is not None and not _positive_number(cls.concurrency, integer=True):
        problems.append(f"concurrency must be a positive integer or None, not {cls.concurrency!r}")
    return problems + _timeout_problems(cls.timeout)


def _timeout_problems(timeout: object) -> list[str]:
    if timeout is not None and not _positive_number(timeout):
        return [f"timeout must be a positive number of seconds or None, not {timeout!r}"]
    return []


def _policy_problems(cls: type[ModelPolicy], model_names: Collection[str] | None) -> list[str]:
    name = cls.model_name
    if not name or not isinstance(name, str):
        return ["has no `model_name`: set it to the name of the model the policy polices"]
    if model_names is not None and name not in model_names:
        return [_unknown_model("polices", name, model_names)]
    return []


def plugin_problems(info: PluginInfo, model_names: Collection[str] | None = None) -> list[str]:
    """Everything wrong with one plugin, each as a complete message naming it.

    `model_names` None skips the checks that need the models.
    """
    obj = info.cls_or_module
    error = kind_error(info.kind, obj)
    if error is not None:
        return [f"{info.origin} {error}"]
    problems: list[str] = []
    if inspect.isclass(obj):
        if issubclass(obj, SyncStep):
            problems = _sync_step_problems(obj, model_names)
        elif issubclass(obj, ModelPolicy):
            problems = _policy_problems(obj, model_names)
        elif issubclass(obj, EventStep):
            subscription = obj.subscription_error()
            problems = [subscription] if subscription else []
        elif issubclass(obj, PullStep):
            if not _positive_number(obj.interval):
                problems = [f"interval must be a positive number of seconds, not {obj.interval!r}"]
            problems += _timeout_problems(obj.timeout)
    return [f"{info.origin} {problem}" for problem in problems]


@attrs.frozen
class ValidationResult:
    """The plugins that passed (`table`) and a message per plugin that did not (`failures`)."""

    table: PluginTable
    failures: tuple[str, ...] = ()


def validate_plugins(
    table: Iterable[PluginInfo],
    model_names: Collection[str] | None,
    *,
    skip_broken: bool = False,
    skip_why: str | None = None,
) -> ValidationResult:
    """Check every plugin of `table`; `model_names` are the models defined (None: unknown yet).

    A sync step with no `observes` or observing an unknown model, a policy with no or an
    unknown `model_name`, an event step with neither or both of `topics` and `pattern`, and a
    class of the wrong kind for its entry-point group are failures. Without `skip_broken`,
    raises `PluginError` naming every failure; with it, logs each as a warning and returns
    the table without the failing plugins.
    """
    entries = tuple(table)
    log = FailureLog(skip_broken=skip_broken, why=skip_why or SKIPPED_BY_CONFIG)
    broken = []
    for info in entries:
        problems = plugin_problems(info, model_names)
        if problems:
            broken.append(info)
            for problem in problems:
                log.add(problem)
    log.raise_unless_skipping()
    return ValidationResult(PluginTable(entries).without(broken), tuple(log.messages))
