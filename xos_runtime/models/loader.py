"""Assemble the runtime's `ModelSet` from xproto files, directories and plugin texts.

Called once at start-up (and by `xos-runtime models ...` commands). Each source is parsed on
its own; then the whole set is validated, because most mistakes (an undefined parent, a link
to a model of another file, two files defining one model) only show when files meet. Every
message names the source file (and line) at fault: the command line prints it as is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeAlias

import attrs

from xos_runtime.config.text import NotUtf8Error, decode_utf8
from xos_runtime.exceptions import ModelError
from xos_runtime.models.definitions import BOOKKEEPING_NAMES, ROOT_BASE, Model, ModelSet
from xos_runtime.models.xproto import BASES_OPTION, parse_xproto

__all__ = [
    "APP_LABEL_OPTION",
    "ModelSource",
    "load_models",
    "read_sources",
    "validate_models",
]

#: The xproto file option that names its models' application (XOS's `app_label`); each
#: model of the file carries it among its options.
APP_LABEL_OPTION = "app_label"

#: A path to a `.xproto` file or to a directory of them, or `(name, text)` from a plugin.
ModelSource: TypeAlias = str | os.PathLike[str] | tuple[str, str]

_log = logging.getLogger(__name__)


def load_models(
    sources: Iterable[ModelSource],
    *,
    on_warning: Callable[[str], None] | None = None,
    extend: ModelSet | None = None,
) -> ModelSet:
    """Parse every source and return the validated set, models in declaration order.

    `extend`: models already defined (a store's): the sources may derive from them, link to
    them and define them anew (a model of the sources replaces the one of that name); the
    set returned holds both.

    A directory contributes its `*.xproto` files (sorted by name, not recursive). A message
    named `XOSBase` is the built-in base and is skipped. Warnings (unsupported constructs that
    were dropped) go to `on_warning`, or to this module's logger when none is given.
    Raises `ModelError` (or its subclass `XprotoSyntaxError`) naming the file at fault.
    """
    warn = on_warning or _log.warning
    models: dict[str, Model] = {}
    for name, text in read_sources(sources):
        parsed = parse_xproto(text, name)
        for message in parsed.warnings:
            warn(message)
        app_label = parsed.options.get(APP_LABEL_OPTION)
        for model in parsed.models:
            if model.name == ROOT_BASE:
                continue
            if app_label is not None and APP_LABEL_OPTION not in model.options:
                # the file's `option app_label` names its models' REST path (`/xosapi/v1/<app>`)
                model = attrs.evolve(model, options={**model.options, APP_LABEL_OPTION: app_label})
            if model.name in models:
                first = models[model.name]
                raise ModelError(
                    f"model {model.name!r} is defined twice: {_at(first)} and {_at(model)}"
                )
            models[model.name] = model
    if extend is not None:
        models = {**{m.name: m for m in extend if m.name not in models}, **models}
    model_set = ModelSet(_resolve_bases(models))
    validate_models(model_set)
    return model_set


def _resolve_bases(models: dict[str, Model]) -> dict[str, Model]:
    """Pick the parent of models that list several bases: `message Service (XOSBase, Mixin)`.

    XOS lists Python mixins (`AttributeMixin`, `PlModelMixIn`) after the base; they add no
    fields. The base that is a model (or XOSBase) is the parent; the others are ignored. With
    no model among them the model is a root (XOS's `User (AbstractBaseUser, PlModelMixIn)`).
    """
    resolved: dict[str, Model] = {}
    for name, model in models.items():
        bases = model.options.get(BASES_OPTION)
        if isinstance(bases, list) and len(bases) > 1:
            defined = [b for b in bases if b in models]
            if len(defined) > 1:
                raise ModelError(
                    f"{_at(model)}: model {name!r} derives from several models "
                    f"({', '.join(map(repr, defined))}); multiple inheritance is not supported"
                )
            model = attrs.evolve(model, parent=defined[0] if defined else None)
        resolved[name] = model
    return resolved


def read_sources(sources: Iterable[ModelSource]) -> Iterable[tuple[str, str]]:
    for source in sources:
        if isinstance(source, tuple):
            name, text = source
            yield str(name), text
            continue
        path = Path(source)
        if path.is_dir():
            for file in sorted(path.glob("*.xproto")):
                if file.is_file():
                    yield str(file), _read(file)
        elif path.exists():
            yield str(path), _read(path)
        else:
            raise ModelError(f"{path}: no such xproto file or directory")


def _read(path: Path) -> str:
    try:
        return decode_utf8(path.read_bytes())
    except NotUtf8Error as exc:
        raise ModelError(exc.at(path)) from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read xproto file: {exc.strerror or exc}") from None


#: Levels of `message Child (Parent)` below a root model. XOS's own hierarchies are a few
#: levels deep; far more is a generated or broken file, and every query of the deepest
#: model would carry that many columns' worth of parents.
MAX_INHERITANCE_DEPTH = 100


def _at(model: Model) -> str:
    return f"{model.source}:{model.line}" if model.line else model.source


def validate_models(models: ModelSet) -> None:
    """Check what only the whole set can show; raise `ModelError` at the first problem.

    Public so that a set rebuilt from stored JSON can be checked the same way.
    """
    _check_parents(models)
    _check_link_targets(models)
    for model in models:
        _check_namespace(models, model)
    _check_shared_tables(models)


def _check_parents(models: ModelSet) -> None:
    for model in models:
        if model.parent is not None and model.parent not in models:
            raise ModelError(
                f"{_at(model)}: model {model.name!r} derives from undefined model {model.parent!r}"
            )
    # Every parent exists, so following parents either reaches a root or comes back. Each
    # model's depth is computed once (a chain of 10,000 levels is named at once, not after
    # minutes of walking it again from every model).
    depth: dict[str, int] = {}
    for model in models:
        chain: list[str] = []
        on_chain: set[str] = set()
        name: str | None = model.name
        while name is not None and name not in depth:
            if name in on_chain:
                cycle = [*chain[chain.index(name) :], name]
                raise ModelError(f"{_at(model)}: inheritance cycle: {' -> '.join(cycle)}")
            chain.append(name)
            on_chain.add(name)
            name = models.get(name).parent
        level = -1 if name is None else depth[name]
        for below in reversed(chain):
            level += 1
            depth[below] = level
            if level > MAX_INHERITANCE_DEPTH:
                deep = models.get(below)
                raise ModelError(
                    f"{_at(deep)}: model {below!r} is {level} levels of inheritance below "
                    f"its root model; at most {MAX_INHERITANCE_DEPTH} are supported"
                )


def _check_link_targets(models: ModelSet) -> None:
    for model in models:
        for link in model.links:
            if link.target not in models:
                raise ModelError(
                    f"{_at(model)}: model {model.name!r}: link {link.name!r} points at "
                    f"undefined model {link.target!r}"
                )


def _check_namespace(models: ModelSet, model: Model) -> None:
    """Every attribute of an object of `model` must mean one thing.

    Fields (own and inherited), links, their `<name>_id` columns and the reverse accessors
    other models add all share one attribute namespace on the object (and most share one set
    of columns), so a clash would silently hide one of them.
    """
    owners: dict[str, str] = {name: f"bookkeeping field {name!r}" for name in BOOKKEEPING_NAMES}

    def claim(name: str, what: str, declared_in: str) -> None:
        if name in owners:
            where = "" if declared_in == model.name else f" (inherited from {declared_in!r})"
            raise ModelError(
                f"{_at(model)}: model {model.name!r}: {what}{where} clashes with {owners[name]}"
            )
        owner = "" if declared_in == model.name else f" of {declared_in!r}"
        owners[name] = f"{what}{owner}"

    for field in models.all_fields(model.name):
        if field.declared_in != ROOT_BASE:
            claim(field.name, f"field {field.name!r}", field.declared_in)
    for link in models.all_links(model.name):
        claim(link.name, f"link {link.name!r}", link.declared_in)
        claim(link.column, f"column {link.column!r} of link {link.name!r}", link.declared_in)
    for source_model, link in models.reverse_links(model.name):
        if link.reverse_name:
            claim(
                link.reverse_name,
                f"reverse name {link.reverse_name!r} of link {source_model}.{link.name}",
                model.name,
            )


def _check_shared_tables(models: ModelSet) -> None:
    """A hierarchy lives in one table: one column name must have one type across it."""
    columns: dict[tuple[str, str], tuple[str, str]] = {}  # (root, column) -> (type, model)
    for model in models:
        root = models.root(model.name)
        declared = [(f.column, f.type) for f in model.fields]
        declared += [(link.column, f"link to {link.target}") for link in model.links]
        for column, type_ in declared:
            key = (root, column)
            if key not in columns:
                columns[key] = (type_, model.name)
                continue
            other_type, other_model = columns[key]
            if other_type != type_:
                raise ModelError(
                    f"{_at(model)}: models {other_model!r} and {model.name!r} share the table "
                    f"of {root!r} but declare column {column!r} with different types: "
                    f"{other_type} and {type_}"
                )
