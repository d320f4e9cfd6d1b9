"""Outcome writes in batches: what a remote engine stores after its units of work.

A remote engine sends the `OutcomeBatch` a local one stores in place (`store/outcomes.py`),
as JSON; the core checks it whole and stores it with the same `apply_batch`: bookkeeping
columns set by id (`enacted`, `policed`, `backend_*`, `policy_*`, `changed_by_*`), never
`updated` and never data, so an edit that lands meanwhile is not overwritten and keeps its
object pending; purges of soft-deleted objects whose `delete_record` succeeded; and the
engine's claims (the next batch claimed and re-read, releases, timed-out calls kept). All
of it, or (a 4xx) none of it. Only the purges wake anyone (bookkeeping is no change of the
objects).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from xos_runtime.core.bodies import MAX_ID, column_names
from xos_runtime.core.errors import ApiError
from xos_runtime.core.leases import RemoteLeases
from xos_runtime.core.users import User
from xos_runtime.exceptions import ObjectValidationError
from xos_runtime.models.definitions import USER_SETTABLE_FLAGS, is_bookkeeping
from xos_runtime.store import (
    PENDING,
    ClaimRequest,
    Claims,
    ModelAccessor,
    OutcomeBatch,
    StatusRestore,
    apply_batch,
)
from xos_runtime.store.values import check_value

__all__ = ["MAX_BATCH", "is_outcome_field", "write_outcomes"]

#: Most updates and purges in one batch.
MAX_BATCH = 10_000

#: Longest status text a restore names.
MAX_TEXT = 100_000
#: What a batch may hold.
_BODY_KEYS = frozenset(
    {"updates", "purges", "owner", "kind", "claim", "release", "keep", "restore"}
)

#: Bookkeeping an outcome never writes: identity, user stamps, and the users' flags.
_NOT_OUTCOMES = frozenset({"id", "leaf_model_name", "deleted", "created", "updated"})


def is_outcome_field(name: str) -> bool:
    """Whether an outcome may write the bookkeeping field `name`."""
    return is_bookkeeping(name) and name not in _NOT_OUTCOMES | USER_SETTABLE_FLAGS


def _entries(body: Mapping[str, Any], key: str) -> list[Any]:
    entries = body.get(key, [])
    if not isinstance(entries, list):
        raise ApiError(400, f"{key}: expected a list", field=key)
    return entries


def _target(accessor: ModelAccessor, entry: Any, where: str) -> tuple[str, int]:
    if not isinstance(entry, Mapping):
        raise ApiError(400, f"{where}: expected an object with model and id", field=where)
    model, oid = entry.get("model"), entry.get("id")
    if not isinstance(model, str) or not accessor.has_model_class(model):
        raise ApiError(400, f"{where}.model: no model named {model!r}", field=f"{where}.model")
    if isinstance(oid, bool) or not isinstance(oid, int) or not 0 < oid <= MAX_ID:
        raise ApiError(400, f"{where}.id: expected an object id, got {oid!r}", field=f"{where}.id")
    return model, oid


def _fields(accessor: ModelAccessor, model: str, fields: Any, where: str) -> dict[str, Any]:
    if not isinstance(fields, Mapping) or not fields:
        raise ApiError(400, f"{where}.fields: expected an object of fields", field=where)
    meta = accessor.get_model_class(model).model_meta()
    values: dict[str, Any] = {}
    for name, value in fields.items():
        at = f"{where}.fields.{name}"
        if name not in meta.fields or not is_outcome_field(name):
            raise ApiError(400, f"{at}: not a field an outcome writes", field=at)
        try:
            values[name] = check_value(model, meta.fields[name], value)
        except ObjectValidationError as exc:
            raise ApiError(400, f"{at}: {exc}", field=at) from None
        if isinstance(values[name], float) and not math.isfinite(values[name]):
            raise ApiError(400, f"{at}: not a finite number", field=at)
    return values


def _restores(accessor: ModelAccessor, entries: list[Any]) -> list[StatusRestore]:
    out: list[StatusRestore] = []
    for i, entry in enumerate(entries):
        where = f"restore[{i}]"
        model, oid = _target(accessor, entry, where)
        expected, text = entry.get("expected"), entry.get("text")
        for name, value in (("expected", expected), ("text", text)):
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise ApiError(400, f"{where}.{name}: expected a text", field=f"{where}.{name}")
        out.append(StatusRestore((accessor.models.root(model), oid), expected, text))
    return out


def _claim_request(accessor: ModelAccessor, leases: RemoteLeases, raw: Any) -> ClaimRequest | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ApiError(400, "claim: expected an object: keys, pending, columns", field="claim")
    unknown = set(raw) - {"keys", "pending", "columns", "adopt_own"}
    if unknown:
        key = sorted(unknown)[0]
        raise ApiError(400, f"claim: unknown key {key!r}", field=f"claim.{key}")
    keys = leases.keys_of(raw.get("keys"), "claim.keys")
    pending = raw.get("pending")
    if pending is not None and pending not in PENDING:
        names = ", ".join(PENDING)
        raise ApiError(
            400, f"claim.pending: expected one of {names}, or null", field="claim.pending"
        )
    columns = column_names(
        accessor, raw.get("columns", ["id"]), [r for r, _ in keys], "claim.columns"
    )
    if not columns:
        raise ApiError(400, "claim.columns: expected column names, id first", field="claim.columns")
    adopt = raw.get("adopt_own", False)
    if not isinstance(adopt, bool):
        raise ApiError(400, "claim.adopt_own: expected true or false", field="claim.adopt_own")
    return ClaimRequest(keys, pending, tuple(columns), adopt_own=adopt)


def write_outcomes(
    accessor: ModelAccessor, leases: RemoteLeases, user: User, body: Any
) -> dict[str, Any]:
    """Check and store one batch (`store.outcomes.OutcomeBatch` as JSON): `{"updates":
    [{"model", "id", "fields"}], "purges": [{"model", "id"}]}` and, for a remote engine's
    claims, `owner` (its lease), `kind`, `claim` (`{"keys", "pending", "columns",
    "adopt_own"}`), `release` and `keep` (lists of `[model, id]`) and `restore`
    (`[{"model", "id", "expected", "text"}]`). Returns how many updates and purges it held
    and, with `claim`, the keys obtained and their re-read columns."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object with updates and purges")
    unknown = set(body) - _BODY_KEYS
    if unknown:
        name = sorted(unknown)[0]
        expected = ", ".join(sorted(_BODY_KEYS))
        raise ApiError(400, f"unknown key {name!r}; expected {expected}", field=name)
    updates, purges = _entries(body, "updates"), _entries(body, "purges")
    restores = _entries(body, "restore")
    if len(updates) + len(purges) + len(restores) > MAX_BATCH:
        raise ApiError(413, f"at most {MAX_BATCH} updates and purges in one batch")
    batch = OutcomeBatch()
    for i, entry in enumerate(updates):
        model, oid = _target(accessor, entry, f"updates[{i}]")
        values = _fields(accessor, model, entry.get("fields"), f"updates[{i}]")
        group = (accessor.models.root(model), tuple(sorted(values)))
        batch.updates.setdefault(group, []).append({"id": oid, **values})
    batch.purges = _purges(accessor, purges)
    batch.restore = _restores(accessor, restores)
    claims: Claims | None = None
    if "owner" in body or "kind" in body:
        claims = leases.claims_of(user, body)
        batch.claim = _claim_request(accessor, leases, body.get("claim"))
        batch.release = leases.keys_of(body.get("release", []), "release")
        batch.keep = leases.keys_of(body.get("keep", []), "keep")
    elif any(body.get(k) for k in ("claim", "release", "keep")):
        raise ApiError(400, "owner: claims need the owner of a lease and a kind", field="owner")
    result = apply_batch(accessor, batch, claims)
    answer: dict[str, Any] = {"updated": len(updates), "purged": len(purges)}
    if result is not None:
        answer["claimed"] = [list(k) for k in sorted(result.held)]
        answer["rows"] = [
            {"model": k[0], "id": k[1], "row": row} for k, row in sorted(result.rows.items())
        ]
    return answer


def _purges(accessor: ModelAccessor, purges: list[Any]) -> dict[str, list[int]]:
    """Ids by leaf model; 409 for an object that is not deleted; ids purged already (a
    retried batch) are left out."""
    store = accessor.store
    doomed: dict[str, list[tuple[int, str]]] = {}
    for i, entry in enumerate(purges):
        model, oid = _target(accessor, entry, f"purges[{i}]")
        doomed.setdefault(store.models.root(model), []).append((oid, f"purges[{i}]"))
    by_leaf: dict[str, list[int]] = {}
    if not doomed:
        return by_leaf  # (no read transaction for nothing: most batches purge nothing)
    with store.read() as conn:
        for root, targets in sorted(doomed.items()):
            table = store.table(root)
            ids = [oid for oid, _ in targets]
            rows = conn.execute(
                sa.select(table.c.id, table.c.leaf_model_name, table.c.deleted).where(
                    table.c.id.in_(ids)
                )
            ).all()
            state = {int(r[0]): (str(r[1] or root), bool(r[2])) for r in rows}
            for oid, where in targets:
                found = state.get(oid)
                if found is None:
                    continue  # purged already: a retried batch
                leaf, deleted = found
                if not deleted:
                    raise ApiError(409, f"{where}: {root} id {oid} is not deleted", field=where)
                by_leaf.setdefault(leaf, []).append(oid)
    return by_leaf
