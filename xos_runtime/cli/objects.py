"""`xos-runtime objects list/show/create/update/delete MODEL [ID] [field=value ...]`.

Its arguments are declared in `cli.commands`; this module is imported when `objects` runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from xos_runtime.cli.common import load_accessor, print_json
from xos_runtime.exceptions import DoesNotExist, ObjectValidationError
from xos_runtime.models.definitions import USER_SETTABLE_FLAGS
from xos_runtime.store import ModelAccessor, ModelObject, parse_text

if TYPE_CHECKING:
    from xos_runtime.store.remote import RemoteAccessor

#: Bookkeeping fields an operator may set: the flags that steer the engines. The rest is the
#: runtime's to write (`deleted` through `objects delete`, which cascades).
SETTABLE_FLAGS = USER_SETTABLE_FLAGS


def _is_utf8(text: str) -> bool:
    """False for a word whose bytes were not UTF-8: Python keeps them as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _values(
    acc: ModelAccessor | RemoteAccessor, model: str, pairs: list[str], *, writing: bool = True
) -> dict[str, Any]:
    """Parse `field=value` words by the field's type; `link=<id>` sets a link by id.

    `writing` refuses the bookkeeping fields the runtime owns; filters may name any field.
    """
    cls = acc.get_model_class(model)
    meta = cls.model_meta()
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ObjectValidationError(f"{model}: expected field=value, got {pair!r}")
        if not _is_utf8(text):  # the shell passed bytes that are not UTF-8 (`$'caf\xe9'`)
            raise ObjectValidationError(f"{model}.{name}: the value is not UTF-8 text: {text!r}")
        if name in meta.links or name in meta.link_by_column:
            link = meta.links.get(name) or meta.link_by_column[name]
            if text == "null":
                values[link.column] = None
                continue
            try:
                values[link.column] = int(text)
            except ValueError:
                raise ObjectValidationError(
                    f"{model}.{link.name}: expected a {link.target} id, got {text!r}"
                ) from None
            continue
        if name not in meta.fields:
            raise ObjectValidationError(
                f"{model} has no field {name!r}; fields: {', '.join(meta.public_names())}"
            )
        if writing and name not in meta.data_fields and name not in SETTABLE_FLAGS:
            hint = "; use `objects delete`" if name == "deleted" else ""
            raise ObjectValidationError(
                f"{model}.{name} is kept by the runtime and cannot be set here{hint}"
            )
        values[name] = parse_text(model, meta.fields[name], text)
    return values


def as_json(obj: ModelObject) -> dict[str, Any]:
    """Every field, bookkeeping included, with each link as the id of its target."""
    meta = obj.model_meta()
    out: dict[str, Any] = {"id": obj.id}
    for name in meta.fields:
        out[name] = obj.__dict__.get(name)
    for link in meta.links.values():
        out[link.name] = obj.__dict__.get(link.column)
    return out


def _print(obj: ModelObject, use_json: bool) -> None:
    if use_json:
        print_json(as_json(obj))
        return
    data = as_json(obj)
    width = max(len(k) for k in data)
    print(f"{obj.model_name} {obj.id}")
    for key, value in data.items():
        print(f"  {key.ljust(width)}  {value}")


def _get(cls: type[ModelObject], model: str, object_id: int) -> ModelObject:
    try:
        return cls.objects.get(id=object_id)
    except DoesNotExist:
        raise DoesNotExist(f"{model} id {object_id} does not exist") from None


def handle(args: argparse.Namespace) -> int:
    acc, close = load_accessor(args)
    try:
        cls = acc.get_model_class(args.model)
        if args.action == "list":
            filters = _values(acc, args.model, args.fields, writing=False)
            rows = list(cls.objects.filter(**filters))
            if args.json:
                print_json([as_json(o) for o in rows])
            else:
                _print_table(rows, cls)
            return 0
        if args.action == "create":
            obj = cls.objects.create(**_values(acc, args.model, args.fields))
        elif args.action == "show":
            obj = _get(cls, args.model, args.id)
        elif args.action == "update":
            obj = _get(cls, args.model, args.id)
            for key, value in _values(acc, args.model, args.fields).items():
                obj.__dict__[key] = value
            obj.save()
        else:
            obj = _get(cls, args.model, args.id)
            obj.delete()
            if not args.json:
                state = "deleted" if obj.deleted else "not deleted (write_protect is set)"
                print(f"{args.model} {args.id} {state}")
                return 0
        _print(obj, args.json)
        return 0
    finally:
        close()


def _print_table(rows: list[ModelObject], cls: type[ModelObject]) -> None:
    meta = cls.model_meta()
    columns = ["id", *meta.data_fields, *meta.links, "backend_code", "backend_status"]
    data = [[str(as_json(o).get(c, "")) for c in columns] for o in rows]
    widths = [max([len(c)] + [len(r[i]) for r in data]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in data:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
