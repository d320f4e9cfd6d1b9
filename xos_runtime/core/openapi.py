"""The OpenAPI document of a core: generated from the models it serves.

One list/create path and one read/update/delete path per model, with a schema of the object
as it is returned (every column) and of what a body may hold (the writable fields, no
others: `additionalProperties: false`), so that clients and fuzzers see the same rules the
server applies (`bodies`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xos_runtime.core.bodies import MAX_ID, READ_ONLY
from xos_runtime.exceptions import ModelError
from xos_runtime.models.definitions import USER_SETTABLE_FLAGS, Field, Model
from xos_runtime.store.objects import ModelMeta
from xos_runtime.store.remote.rows import MAX_ROW_KEYS

__all__ = [
    "API_PREFIX",
    "MAX_PENDING_PAGE",
    "OWN_PATHS",
    "PENDING_PAGE",
    "check_routes",
    "model_route",
    "openapi_document",
    "route_of",
]

#: Where the models' paths start, as in XOS.
API_PREFIX = "/xosapi/v1"

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}

_ERROR = {"$ref": "#/components/schemas/Error"}


#: Objects of a pending read per page (`?limit=`), and the most one may ask for.
PENDING_PAGE = 2_000
MAX_PENDING_PAGE = 10_000

#: The first segments after `API_PREFIX` that are the core's own routes, not an app's.
OWN_PATHS = frozenset(
    {
        "attempts",
        "changes",
        "claims",
        "codes",
        "events",
        "leases",
        "models",
        "outcomes",
        "rows",
        "schedule",
        "status",
        "version",
    }
)


def route_of(meta: ModelMeta) -> tuple[str, str]:
    """`(app, plural)` of a model: its xproto `app_label` (`core` if none), its lower-case
    name with an `s` (XOS's convention: `/xosapi/v1/core/sites`)."""
    return model_route(meta.definition)


def model_route(model: Model) -> tuple[str, str]:
    """`route_of` a model's definition."""
    app = model.options.get("app_label") or "core"
    return str(app), model.name.lower() + "s"


def check_routes(models: Iterable[Model]) -> None:
    """`ModelError` naming the model when a model's path would be one of the core's own
    (an `app_label` in `OWN_PATHS`: `/xosapi/v1/events/...` is the event bus) or another
    model's (`Site` and `SITE` are both `/xosapi/v1/core/sites`): either would hide one of
    the two. Checked when a core starts and when a synchronizer loads its models."""
    taken: dict[tuple[str, str], str] = {}
    for model in sorted(models, key=lambda m: m.name):
        app, plural = model_route(model)
        where = f"model {model.name}" + (f" ({model.source})" if model.source else "")
        if app in OWN_PATHS:
            raise ModelError(
                f"{where}: app_label {app!r} is a path of the core's own API "
                f"({API_PREFIX}/{app}/...); choose another app_label"
            )
        other = taken.setdefault((app, plural), model.name)
        if other != model.name:
            raise ModelError(
                f"{where}: its path {API_PREFIX}/{app}/{plural} is model {other}'s too; "
                "rename one of them or give it another app_label"
            )


def _read(
    operation: str, summary: str, *errors: str, parameters: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A path with one GET that answers a JSON object."""
    get: dict[str, Any] = {"operationId": operation, "summary": summary}
    if parameters:
        get["parameters"] = parameters
    get["responses"] = _responses("200", {"type": "object"}, *errors)
    return {"get": get}


def _schema(field: Field, *, nullable: bool) -> dict[str, Any]:
    t = field.type
    out: dict[str, Any]
    if t in ("string", "text"):
        out = {"type": "string"}
        if field.max_length is not None:
            out["maxLength"] = field.max_length
    elif t == "bool":
        out = {"type": "boolean"}
    elif t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        out = {"type": "integer", "minimum": lo, "maximum": hi}
    else:
        out = {"type": "number"}
    if nullable:
        out["nullable"] = True
    return out


def _object_schema(meta: ModelMeta) -> dict[str, Any]:
    props: dict[str, Any] = {"id": {"type": "integer"}}
    for f in meta.fields.values():
        props[f.name] = _schema(f, nullable=True)
    for link in meta.links.values():
        props[link.column] = {"type": "integer", "nullable": True}
    return {"type": "object", "properties": props}


def _input_schema(meta: ModelMeta, *, creating: bool) -> dict[str, Any]:
    """What an ordinary user may send; synchronizers may also send the feedback fields."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in meta.fields.values():
        if f.name in READ_ONLY or f.name == "deleted":
            continue
        if f.name not in meta.data_fields and f.name not in USER_SETTABLE_FLAGS:
            continue
        must = creating and f.required and not f.has_default
        props[f.name] = _schema(f, nullable=not must and (f.null or not f.required))
        if must:
            required.append(f.name)
    for link in meta.links.values():
        props[link.column] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_ID,
            "nullable": not link.required,
        }
        if creating and link.required:
            required.append(link.column)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _responses(ok: str, schema: dict[str, Any] | None, *codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {ok: {"description": "success"}}
    if schema is not None:
        out[ok]["content"] = {"application/json": {"schema": schema}}
    for code in ("400", "401", "403", "404", "429", *codes):
        out[code] = {"description": "refused", "content": {"application/json": {"schema": _ERROR}}}
    return out


def _filters(meta: ModelMeta) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {
            "name": "page_size",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
    ]
    for f in meta.fields.values():
        params.append({"name": f.name, "in": "query", "schema": _schema(f, nullable=False)})
    for link in meta.links.values():
        params.append({"name": link.column, "in": "query", "schema": {"type": "integer"}})
    return params


def _event_paths(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The embedded event bus's routes (`core.events`)."""
    topic = {
        "name": "topic",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"},
    }
    member = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
    group = {"type": "string", "minLength": 1, "maxLength": 255}
    pair = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}
    text = {"type": "string", "nullable": True}
    schemas["EventPublish"] = {
        "type": "object",
        "properties": {
            "value": text,
            "key": text,
            "headers": {"type": "array", "items": pair},
            "encoding": {"type": "string", "enum": ["utf-8", "base64"]},
        },
        "required": ["value"],
        "additionalProperties": False,
    }
    schemas["EventCommit"] = {
        "type": "object",
        "properties": {
            "group": group,
            "member": member,
            "offsets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "partition": {"type": "integer", "minimum": 0},
                        "offset": {"type": "integer", "minimum": 0},
                    },
                    "required": ["partition", "offset"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["group", "offsets"],
        "additionalProperties": False,
    }
    message = {
        "type": "object",
        "properties": {
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "key": {"type": "string", "format": "byte", "nullable": True},
            "value": {"type": "string", "format": "byte", "nullable": True},
            "timestamp": {"type": "number"},
            "headers": {"type": "array", "items": pair},
        },
    }
    fetched = {
        "type": "object",
        "properties": {
            "topic": {"type": "string"},
            "group": {"type": "string"},
            "messages": {"type": "array", "items": message},
        },
    }

    def body(name: str) -> dict[str, Any]:
        schema = {"$ref": f"#/components/schemas/{name}"}
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    paths[f"{API_PREFIX}/events"] = {
        "get": {
            "operationId": "listTopics",
            "summary": "synchronizers: the topics of the store's event bus",
            "responses": _responses(
                "200",
                {
                    "type": "object",
                    "required": ["topics"],
                    "properties": {"topics": {"type": "array", "items": {"type": "string"}}},
                },
            ),
        },
    }
    paths[f"{API_PREFIX}/events/{{topic}}"] = {
        "parameters": [topic],
        "post": {
            "operationId": "publishEvent",
            "summary": "publish one message to the store's event bus (any user); key and "
            "value as utf-8 text or, with encoding base64, bytes; headers [name, base64]",
            "requestBody": body("EventPublish"),
            "responses": _responses("201", {"type": "object"}, "413"),
        },
        "get": {
            "operationId": "fetchEvents",
            "summary": "synchronizers: the messages after the group's committed offsets of "
            "the partitions this member holds (taken for 30 s), waiting up to wait seconds; "
            "keys and values base64",
            "parameters": [
                {"name": "group", "in": "query", "required": True, "schema": group},
                {"name": "member", "in": "query", "schema": member},
                {
                    "name": "max",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "wait",
                    "in": "query",
                    "schema": {"type": "number", "minimum": 0, "maximum": 60},
                },
                {
                    "name": "positions",
                    "in": "query",
                    "schema": {"type": "string", "pattern": "^[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*$"},
                },
            ],
            "responses": _responses("200", fetched),
        },
        "delete": {
            "operationId": "leaveGroup",
            "summary": "synchronizers: the member leaves its group (its partitions are free)",
            "parameters": [
                {"name": "group", "in": "query", "required": True, "schema": group},
                {"name": "member", "in": "query", "schema": member},
            ],
            "responses": _responses("204", None),
        },
    }
    paths[f"{API_PREFIX}/events/{{topic}}/commit"] = {
        "parameters": [topic],
        "post": {
            "operationId": "commitEvents",
            "summary": "synchronizers: record the group's next offsets (last handled + 1) of "
            "partitions this member holds; all or nothing (409)",
            "requestBody": body("EventCommit"),
            "responses": _responses("200", {"type": "object"}, "409", "413"),
        },
    }


def _bookkeeping_paths(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The pull and event engines' bookkeeping (`core.bookkeeping`)."""
    partition = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    offset = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    topic = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,249}$"}
    time = {"type": "number", "minimum": -1e15, "maximum": 1e15}

    def obj(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": props,
            "required": list(props),
            "additionalProperties": False,
        }

    def items(props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": obj(props), "maxItems": 500}

    schemas["ScheduleTake"] = obj(
        {
            "owner": {"type": "string", "minLength": 1, "maxLength": 200},
            "now": time,
            "interval": {"type": "number", "minimum": 0, "maximum": 1e9},
        }
    )
    schemas["AttemptsFailed"] = obj(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "error": {"type": "string"},
            "next_run": time,
        }
    )
    schemas["AttemptsLoad"] = obj(
        {"spans": items({"topic": topic, "partition": partition, "first": offset, "last": offset})}
    )
    schemas["AttemptsForget"] = obj(
        {"committed": items({"topic": topic, "partition": partition, "offset": offset})}
    )

    def post(op: str, summary: str, schema: str, param: dict[str, Any]) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {
            "parameters": [param],
            "post": {
                "operationId": op,
                "summary": summary,
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
                "responses": _responses("200", {"type": "object"}, "413"),
            },
        }

    job = {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}
    group = {"name": "group", "in": "path", "required": True, "schema": {"type": "string"}}
    paths[f"{API_PREFIX}/schedule/{{job}}"] = post(
        "scheduleTake",
        "synchronizers: whether owner gets the run of an interval job due at now (the "
        "next one is due at now + interval); {taken}",
        "ScheduleTake",
        job,
    )
    for op, summary in (
        ("failed", "count one more failed call of a message; {attempts} in all"),
        ("load", "the stored attempts of the messages in offset spans (first, last included)"),
        ("forget", "drop the attempts of the messages below committed offsets"),
    ):
        paths[f"{API_PREFIX}/attempts/{{group}}/{op}"] = post(
            f"attempts{op.title()}",
            f"synchronizers: a consumer group's failed event messages: {summary}",
            f"Attempts{op.title()}",
            group,
        )


def openapi_document(metas: list[ModelMeta], version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of a core serving these models."""
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "health",
                "security": [],
                "responses": {"200": {"description": "the core is up"}},
            }
        },
        f"{API_PREFIX}/version": {
            "get": {
                "summary": "the XOS core API version and xos-runtime's",
                "security": [],
                "responses": {"200": {"description": "versions"}},
            }
        },
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["error"],
        }
    }
    paths[f"{API_PREFIX}/changes"] = {
        "get": {
            "operationId": "changes",
            "summary": "the change feed: without since, the current number; with it, the "
            "changes after it, waiting up to timeout seconds for one",
            "parameters": [
                {"name": "since", "in": "query", "schema": {"type": "integer"}},
                {
                    "name": "timeout",
                    "in": "query",
                    "schema": {"type": "number", "minimum": 0, "maximum": 60},
                },
            ],
            "responses": _responses("200", {"$ref": "#/components/schemas/Changes"}),
        }
    }
    key: dict[str, Any] = {"model": {"type": "string"}, "id": {"type": "integer", "minimum": 1}}
    target = {"type": "object", "properties": key, "required": ["model", "id"]}
    update = {
        "type": "object",
        "properties": {**key, "fields": {"type": "object"}},
        "required": ["model", "id", "fields"],
    }
    pairs = {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}}
    restore = {
        "type": "object",
        "properties": {**key, "expected": {"type": "string"}, "text": {"type": "string"}},
        "required": ["model", "id", "expected", "text"],
    }
    paths[f"{API_PREFIX}/outcomes"] = {
        "post": {
            "operationId": "outcomes",
            "summary": "synchronizers: bookkeeping writes by id and purges of deleted objects, "
            "with an engine's claims (owner, kind: claim, release, keep, restore), in one "
            "transaction",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "updates": {"type": "array", "items": update},
                                "purges": {"type": "array", "items": target},
                                "owner": {"type": "string"},
                                "kind": {"type": "string"},
                                "claim": {
                                    "type": "object",
                                    "properties": {
                                        "keys": pairs,
                                        "pending": {"type": "string", "nullable": True},
                                        "columns": {"type": "array", "items": {"type": "string"}},
                                        "adopt_own": {"type": "boolean"},
                                    },
                                    "additionalProperties": False,
                                },
                                "release": pairs,
                                "keep": pairs,
                                "restore": {"type": "array", "items": restore},
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": _responses("200", {"type": "object"}, "409", "413"),
        }
    }

    def post(op: str, summary: str, body: dict[str, Any], ok: str = "200") -> dict[str, Any]:
        content = {"application/json": {"schema": body}}
        return {
            "post": {
                "operationId": op,
                "summary": summary,
                "requestBody": {"required": True, "content": content},
                "responses": _responses(ok, {"type": "object"}, "409", "413"),
            }
        }

    keys = {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}}
    paths[f"{API_PREFIX}/rows"] = post(
        "rows",
        "synchronizers: rows by [root model, id], live or deleted, every column or only "
        "columns (id first); missing rows are absent",
        {
            "type": "object",
            "properties": {
                "keys": {**keys, "maxItems": MAX_ROW_KEYS},
                "columns": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["keys"],
            "additionalProperties": False,
        },
    )
    claim = {
        "type": "object",
        "properties": {
            "owner": {"type": "string"},
            "kind": {"type": "string"},
            "keys": keys,
            "pending": {
                "type": "string",
                "enum": ["sync", "sync_deleted", "policy", "policy_deleted"],
                "nullable": True,
            },
        },
        "required": ["owner", "kind", "keys"],
    }
    lease = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "ttl": {"type": "number", "minimum": 0.1, "maximum": 3600},
            "shares_work": {"type": "boolean"},
        },
        "additionalProperties": False,
    }
    paths[f"{API_PREFIX}/leases"] = post(
        "leaseRegister",
        "synchronizers: register a remote runtime's lease (it expires unless renewed)",
        lease,
        "201",
    )
    owner = [{"name": "owner", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths[f"{API_PREFIX}/leases/{{owner}}"] = {
        "parameters": owner,
        "put": {
            "operationId": "leaseRenew",
            "summary": "renew a lease",
            "responses": _responses("200", {"type": "object"}),
        },
        "delete": {
            "operationId": "leaseClose",
            "summary": "end a lease and drop its claims",
            "responses": _responses("204", None),
        },
    }
    reap = post(
        "leaseReap",
        "take over the claims of gone runtimes; this one's share of the work",
        {"type": "object", "properties": {"kinds": {"type": "array", "items": {"type": "string"}}}},
    )
    reap["post"]["parameters"] = owner
    paths[f"{API_PREFIX}/leases/{{owner}}/reap"] = reap
    paths[f"{API_PREFIX}/claims"] = post(
        "claim", "claim objects nobody holds (only rows still pending, with pending)", claim
    )
    paths[f"{API_PREFIX}/claims"]["get"] = {
        "operationId": "heldClaims",
        "summary": "synchronizers: every process's claims, by owner and engine",
        "responses": _responses("200", {"type": "object"}),
    }
    paths[f"{API_PREFIX}/claims/release"] = post("release", "release claims", claim)
    paths[f"{API_PREFIX}/codes/{{code}}"] = {
        "get": {
            "operationId": "countWithCode",
            "summary": "synchronizers: how many objects' last sync or policy ended with code",
            "parameters": [
                {
                    "name": "code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": 999},
                }
            ],
            "responses": _responses("200", {"type": "object"}),
        }
    }
    xproto = {
        "type": "object",
        "properties": {"filename": {"type": "string"}, "contents": {"type": "string"}},
        "required": ["filename", "contents"],
        "additionalProperties": False,
    }
    paths[f"{API_PREFIX}/models"] = post(
        "loadModels",
        "synchronizers: load xproto model definitions, evolving the store (as XOS's LoadModels)",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "xprotos": {"type": "array", "items": xproto, "minItems": 1},
            },
            "required": ["name", "xprotos"],
            "additionalProperties": False,
        },
    )
    paths[f"{API_PREFIX}/models"]["get"] = {
        "operationId": "servedModels",
        "summary": "the models served: their definitions and the path of each (what a "
        "remote accessor builds its classes from)",
        "responses": _responses("200", {"type": "object"}),
    }
    paths[f"{API_PREFIX}/status"] = _read(
        "status",
        "what `xos-runtime status` reports: counts per model and state, the objects not in "
        "sync, the processes at work",
    )
    paths[f"{API_PREFIX}/status/page"] = _read(
        "statusPage",
        "what a runtime's status page shows of the store (`/api/status`): counts, the "
        "objects not in sync with the root of their trouble, the processes",
    )
    paths[f"{API_PREFIX}/status/page/{{model}}"] = _read(
        "statusPageModel",
        "a model's first objects with their states (`/api/objects/<model>`)",
        "404",
        parameters=[
            {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
    )
    _event_paths(paths, schemas)
    _bookkeeping_paths(paths, schemas)
    schemas["Changes"] = {
        "type": "object",
        "properties": {
            "epoch": {"type": "string"},
            "seq": {"type": "integer"},
            "models": {"type": "array", "items": {"type": "string"}, "nullable": True},
        },
    }
    caller = {
        "name": "X-XOS-Caller",
        "in": "header",
        "description": "who saves (synchronizers only, but user): moves the timestamps "
        "that caller's saves move",
        "schema": {"type": "string", "enum": ["user", "sync", "policy", "pull", "event"]},
    }
    for meta in metas:
        app, plural = route_of(meta)
        name = meta.name
        schemas[name] = _object_schema(meta)
        schemas[f"{name}Create"] = _input_schema(meta, creating=True)
        schemas[f"{name}Update"] = _input_schema(meta, creating=False)
        ref = {"$ref": f"#/components/schemas/{name}"}
        listing = {"type": "object", "properties": {"items": {"type": "array", "items": ref}}}
        after = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        limit = {"type": "integer", "minimum": 1, "maximum": MAX_PENDING_PAGE}
        pending = {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": ref},
                "next": {"type": "integer", "nullable": True},
            },
        }
        oid = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]

        def body(kind: str, model: str = name) -> dict[str, Any]:
            schema = {"$ref": f"#/components/schemas/{model}{kind}"}
            return {"required": True, "content": {"application/json": {"schema": schema}}}

        paths[f"{API_PREFIX}/{app}/{plural}"] = {
            "get": {
                "operationId": f"list{name}",
                "summary": f"live {name} objects, filtered by field=value, paged",
                "parameters": _filters(meta),
                "responses": _responses("200", listing),
            },
            "post": {
                "operationId": f"create{name}",
                "parameters": [caller],
                "summary": f"create a {name}",
                "requestBody": body("Create"),
                "responses": _responses("201", ref, "413"),
            },
        }
        for kind, what in (("pending", "sync"), ("policy_pending", "policies")):
            paths[f"{API_PREFIX}/{app}/{plural}/{kind}"] = {
                "get": {
                    "operationId": f"{kind}{name}",
                    "summary": f"{name} objects pending for {what} (or, deleted=true, for "
                    "their deletion), by pages in id order: those with ids above after, at "
                    "most limit; next is the after of the next page (null: the last one)",
                    "parameters": [
                        {"name": "deleted", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "after", "in": "query", "schema": after},
                        {"name": "limit", "in": "query", "schema": limit},
                    ],
                    "responses": _responses("200", pending),
                }
            }
        paths[f"{API_PREFIX}/{app}/{plural}/{{id}}"] = {
            "parameters": oid,
            "get": {
                "operationId": f"read{name}",
                "summary": f"one {name}",
                "responses": _responses("200", ref),
            },
            "put": {
                "operationId": f"update{name}",
                "parameters": [caller],
                "summary": f"change fields of a {name}",
                "requestBody": body("Update"),
                "responses": _responses("200", ref, "413"),
            },
            "delete": {
                "operationId": f"delete{name}",
                "summary": f"delete a {name} (soft, with cascade)",
                "responses": _responses("204", None, "409"),
            },
        }
    return {
        "openapi": "3.0.3",
        "info": {"title": "xos-runtime core (XOS REST API)", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            },
        },
        "security": [{"basicAuth": []}, {"bearerAuth": []}],
    }
