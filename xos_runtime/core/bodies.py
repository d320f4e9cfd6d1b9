"""What a request may write and filter by: every value checked against the model first.

A body is checked whole before anything is written (so a refusal writes nothing): the
object's own fields and links, each by the store's rules (`store.values.check_value`), links
to live objects only, and the bookkeeping fields by role, as in XOS: a user sets the flags
that steer the engines (`USER_SETTABLE_FLAGS`); a synchronizer also writes the feedback
(`backend_*`, `policy_*`, `enacted`, `policed`, the other stamps). Nobody writes `id` or
`leaf_model_name`, and `deleted` is set by DELETE, which cascades.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from xos_runtime.core.errors import ApiError
from xos_runtime.core.users import User
from xos_runtime.exceptions import ObjectValidationError
from xos_runtime.models.definitions import USER_SETTABLE_FLAGS, Field, Link
from xos_runtime.store import ModelAccessor, parse_text
from xos_runtime.store.objects import ModelMeta
from xos_runtime.store.values import check_value

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ID",
    "PAGING_PARAMS",
    "column_names",
    "filters_of",
    "object_keys",
    "text_ok",
    "writes_of",
]

#: Largest request body accepted (413 beyond).
MAX_BODY_BYTES = 1 << 20

#: Query parameters of a list that are not filters.
PAGING_PARAMS = frozenset({"page", "page_size"})

#: The largest object id: ids and links are 32-bit integer columns (`store.schema`), and
#: PostgreSQL refuses to compare them with a larger number.
MAX_ID = 2**31 - 1

#: Bookkeeping fields nobody writes through the API.
READ_ONLY = frozenset({"id", "leaf_model_name"})


def text_ok(name: str, value: str) -> None:
    """Text a database can hold: UTF-8 (no lone surrogates) and no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name}: the value is not UTF-8 text", field=name) from None
    if "\x00" in value:
        raise ApiError(400, f"{name}: the value holds a NUL character", field=name)


def _field_value(meta: ModelMeta, field: Field, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, f"{meta.name}.{field.name}: not a finite number", field=field.name)
    if isinstance(value, str):
        text_ok(field.name, value)
    try:
        return check_value(meta.name, field, value)
    except ObjectValidationError as exc:
        raise ApiError(400, str(exc), field=field.name) from None


def _link_value(meta: ModelMeta, link: Link, value: Any, key: str) -> int | None:
    """The id a link is set to; errors name the link as the body did (`site` or `site_id`)."""
    if value is None:
        if link.required:
            raise ApiError(400, f"{meta.name}.{link.name}: a {link.target} is required", field=key)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            400,
            f"{meta.name}.{link.name}: expected a {link.target} id, got {value!r}",
            field=key,
        )
    if not 0 < value <= MAX_ID or not meta.store.exists(link.target, value):
        raise ApiError(
            400,
            f"{meta.name}.{link.name}: {link.target} id {value} does not exist",
            field=key,
        )
    return value


def _may_write(meta: ModelMeta, name: str, user: User) -> None:
    if name in READ_ONLY:
        raise ApiError(400, f"{meta.name}.{name} is read-only", field=name)
    if name == "deleted":
        raise ApiError(400, f"{meta.name}.deleted is set by DELETE (it cascades)", field=name)
    if name in meta.data_fields or name in USER_SETTABLE_FLAGS or user.synchronizer:
        return
    raise ApiError(
        403, f"{meta.name}.{name} is written by synchronizers only (user {user.name})", field=name
    )


def writes_of(
    meta: ModelMeta, body: Any, user: User, *, creating: bool, object_id: int | None = None
) -> dict[str, Any]:
    """The checked values of a POST or PUT body, by column (`site_id` for the link `site`).

    Raises `ApiError` naming the field at fault: 400 for an unknown field, a wrong type, an
    oversize value or a link to an object that does not exist, 403 for a field the user's
    role may not write. `object_id` (PUT) admits an `id` equal to it, as clients that send
    the object back whole do.
    """
    if not isinstance(body, Mapping):
        raise ApiError(400, f"{meta.name}: the body must be a JSON object of fields")
    values: dict[str, Any] = {}
    for name, value in body.items():
        if name == "id" and object_id is not None and value == object_id:
            continue
        link = meta.links.get(name) or meta.link_by_column.get(name)
        if link is not None:
            if link.column in values:
                raise ApiError(400, f"{meta.name}.{link.name} is given twice", field=name)
            values[link.column] = _link_value(meta, link, value, name)
            continue
        field = meta.fields.get(name)
        if field is None and name != "id":
            fields = ", ".join(meta.public_names())
            raise ApiError(400, f"{meta.name} has no field {name!r}; fields: {fields}", field=name)
        _may_write(meta, name, user)
        assert field is not None
        values[name] = _field_value(meta, field, value)
    if creating:
        for field in meta.fields.values():
            if field.required and not field.has_default and values.get(field.name) is None:
                raise ApiError(
                    400, f"{meta.name}.{field.name}: a value is required", field=field.name
                )
        for link in meta.links.values():
            if link.required and values.get(link.column) is None:
                raise ApiError(
                    400, f"{meta.name}.{link.name}: a {link.target} is required", field=link.column
                )
    return values


def filters_of(meta: ModelMeta, params: Mapping[str, str]) -> dict[str, Any]:
    """Equality filters from query parameters (`?name=s1&site_id=2`), typed by the model."""
    filters: dict[str, Any] = {}
    for name, text in params.items():
        if name in PAGING_PARAMS:
            continue
        text_ok(name, text)
        link = meta.links.get(name) or meta.link_by_column.get(name)
        if name == "id" or link is not None:
            column = "id" if link is None else link.column
            if text == "null" and link is not None:
                filters[column] = None
                continue
            try:
                filters[column] = int(text)
            except ValueError:
                raise ApiError(
                    400, f"{meta.name}.{name}: expected an id, got {text!r}", field=name
                ) from None
            if not -MAX_ID <= filters[column] <= MAX_ID:
                raise ApiError(400, f"{meta.name}.{name}: {text} is not an id", field=name)
            continue
        field = meta.fields.get(name)
        if field is None:
            fields = ", ".join(meta.public_names())
            raise ApiError(400, f"{meta.name} has no field {name!r}; fields: {fields}", field=name)
        try:
            value = parse_text(meta.name, field, text)
            if value is not None and field.type not in ("string", "text"):
                value = check_value(meta.name, field, value)  # in the column's range
        except ObjectValidationError as exc:
            raise ApiError(400, str(exc), field=name) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"{meta.name}.{name}: not a finite number", field=name)
        filters[name] = value
    return filters


def object_keys(
    accessor: ModelAccessor,
    raw: Any,
    field: str,
    *,
    to_root: bool = False,
    limit: int | None = None,
) -> list[tuple[str, int]]:
    """Object keys from a body's list of `[model, id]` (claims, releases, rows); with
    `to_root`, each named by its root model (what claims are kept by). 400 naming `field`."""
    if not isinstance(raw, list):
        raise ApiError(400, f"{field}: expected a list of [model, id]", field=field)
    if limit is not None and len(raw) > limit:
        raise ApiError(400, f"{field}: at most {limit} per request, got {len(raw)}", field=field)
    models = accessor.models
    keys: list[tuple[str, int]] = []
    for i, key in enumerate(raw):
        ok = isinstance(key, list) and len(key) == 2 and isinstance(key[0], str)
        ok = ok and key[0] in models and isinstance(key[1], int) and not isinstance(key[1], bool)
        if not ok or not 0 < key[1] <= MAX_ID:
            raise ApiError(400, f"{field}[{i}]: expected [model, id], got {key!r:.80}", field=field)
        keys.append((models.root(key[0]) if to_root else key[0], key[1]))
    return keys


def column_names(
    accessor: ModelAccessor, raw: Any, roots: Iterable[str], field: str
) -> tuple[str, ...]:
    """Column names a read asks for (`id` first) that every table of `roots` has; 400
    naming `field` otherwise. An empty list is none (every column)."""
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ApiError(400, f"{field}: expected a list of column names", field=field)
    if raw and raw[0] != "id":
        raise ApiError(400, f"{field}: the first must be id", field=field)
    for root in sorted(set(roots)):
        table = accessor.store.table(root)
        for name in raw:
            if name not in table.c:
                raise ApiError(400, f"{field}: {root} has no column {name!r:.80}", field=field)
    return tuple(raw)
