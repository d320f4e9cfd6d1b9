"""The core's HTTP API (a Starlette application) over one model accessor.

The XOS REST shape: `/xosapi/v1/<app>/<plural>` lists (GET, `{"items": [...]}`, filters as
query parameters, `?page=N&page_size=M`) and creates (POST, 201 with the object);
`/xosapi/v1/<app>/<plural>/<id>` reads (GET), updates (PUT with the fields to change) and
deletes (DELETE: soft, with cascade, as the store does). Objects are returned as
`ModelObject.to_dict()` gives them: every column, bookkeeping included, links as
`<link>_id`. Every refusal is JSON `{"error": ..., "field": ...}`.

The store is synchronous: each request's store work runs in Starlette's thread pool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xos_runtime import __version__
from xos_runtime.config.coreversion import CORE_API_VERSION
from xos_runtime.core.auth import FailureLimit, authenticate, known_at_once
from xos_runtime.core.bodies import MAX_BODY_BYTES, MAX_ID, filters_of, writes_of
from xos_runtime.core.bookkeeping import Bookkeeping
from xos_runtime.core.errors import ApiError
from xos_runtime.core.events import EventApi, owner_of, topic_of
from xos_runtime.core.feed import ChangeFeed
from xos_runtime.core.leases import RemoteLeases, held_to_dict
from xos_runtime.core.loadmodels import load_synchronizer_models
from xos_runtime.core.openapi import (
    API_PREFIX,
    MAX_PENDING_PAGE,
    PENDING_PAGE,
    check_routes,
    openapi_document,
    route_of,
)
from xos_runtime.core.outcomes import write_outcomes
from xos_runtime.core.params import count_param, seconds_param
from xos_runtime.core.responses import JSONResponse
from xos_runtime.core.rows import read_rows
from xos_runtime.core.threads import in_thread
from xos_runtime.core.users import User, Users
from xos_runtime.engines import collect_status
from xos_runtime.exceptions import DoesNotExist, ObjectValidationError, StoreError
from xos_runtime.observe.page import model_view, status_view
from xos_runtime.store import CallerKind, ModelAccessor, ModelObject, acting_as, transient, wire
from xos_runtime.store.tracking import CALLER_KINDS

__all__ = ["build_app"]

#: Highest page number (and page size) a list is asked for.
MAX_PAGE = 2**31
#: Largest page a list returns at once.
MAX_PAGE_SIZE = 1000
#: Page size of `?page=N` without `page_size`.
DEFAULT_PAGE_SIZE = 100
#: The request header that names who saves (XOS's `caller_kind`).
CALLER_HEADER = "X-XOS-Caller"
#: Longest wait of a change-feed request, and the wait when it names none (seconds).
MAX_FEED_WAIT = 60.0
DEFAULT_FEED_WAIT = 30.0


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


class CoreApi:
    """The routes' work over one accessor, its users and one failure limit."""

    def __init__(self, accessor: ModelAccessor, users: Users, limit: FailureLimit):
        self.accessor = accessor
        self.users = users
        self.limit = limit
        self.models: dict[tuple[str, str], type[ModelObject]] = {}
        self.document: dict[str, Any] = {}
        self.refresh()

    def refresh(self) -> None:
        """Serve the accessor's models (again, after a synchronizer loaded its own)."""
        classes = self.accessor.get_all_model_classes().values()
        check_routes(cls.model_meta().definition for cls in classes)
        models: dict[tuple[str, str], type[ModelObject]] = {}
        for cls in classes:
            models[route_of(cls.model_meta())] = cls
        metas = [cls.model_meta() for cls in models.values()]
        self.document = openapi_document(metas, CORE_API_VERSION)
        self.models = models

    def served_models(self) -> dict[str, Any]:
        """The models served, as a remote accessor builds its classes from them: their
        definitions (`Model.to_dict()`, parents and links included) and the path of each."""
        return {
            "models": json.loads(self.accessor.models.to_json()),
            "paths": {
                cls.model_meta().name: f"{API_PREFIX}/{app}/{plural}"
                for (app, plural), cls in self.models.items()
            },
        }

    def load_models(self, body: Any) -> dict[str, Any]:
        loaded = load_synchronizer_models(self.accessor, body)
        if loaded["models"]:
            self.refresh()
        return loaded

    # -- plumbing ------------------------------------------------------------------------------

    def user_of(self, request: Request) -> User:
        client = request.client.host if request.client else "unknown"
        return authenticate(request.headers, client, self.users, self.limit)

    async def user(self, request: Request) -> User:
        """`user_of` on the event loop when the credentials were checked a moment ago (no
        store, no hash), else in a worker thread: the engines' requests come every few ms."""
        if known_at_once(request.headers, self.users):
            return self.user_of(request)
        return await in_thread(self.user_of, request)

    async def synchronizer(self, request: Request, what: str) -> User:
        """`synchronizer_of`, as `user` runs `user_of`."""
        if known_at_once(request.headers, self.users):
            return self.synchronizer_of(request, what)
        return await in_thread(self.synchronizer_of, request, what)

    def synchronizer_of(self, request: Request, what: str) -> User:
        """The user of a request that only synchronizers may make (403 for others)."""
        user = self.user_of(request)
        if not user.synchronizer:
            raise ApiError(403, f"{what}: synchronizers only (user {user.name} is not one)")
        return user

    def model_of(self, request: Request) -> type[ModelObject]:
        key = (request.path_params["app"], request.path_params["plural"])
        cls = self.models.get(key)
        if cls is None:
            raise ApiError(404, f"no model at {API_PREFIX}/{key[0]}/{key[1]}")
        return cls

    @staticmethod
    def object_id_param(request: Request, name: str) -> int:
        """A small whole number from the path (a backend code)."""
        text = request.path_params[name]
        if not text.isdigit() or len(text) > 3:
            raise ApiError(404, f"not a code: {text!r}", field=name)
        return int(text)

    @staticmethod
    def object_id(request: Request) -> int:
        text = request.path_params["id"]
        try:
            value = int(text)
        except ValueError:
            raise ApiError(404, f"not an object id: {text!r}", field="id") from None
        if not 0 < value <= MAX_ID:
            raise ApiError(404, f"no object with id {value}", field="id")
        return value

    @staticmethod
    async def body_of(request: Request) -> Any:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)

        try:
            return wire.loads(b"".join(chunks))
        except (ValueError, RecursionError) as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from None

    @staticmethod
    def live(cls: type[ModelObject], object_id: int) -> ModelObject:
        try:
            return cls.objects.get(id=object_id)
        except DoesNotExist:
            name = cls.model_meta().name
            raise ApiError(404, f"{name} id {object_id} does not exist", field="id") from None

    # -- the model routes ----------------------------------------------------------------------

    def list(self, cls: type[ModelObject], params: dict[str, str]) -> dict[str, Any]:
        meta = cls.model_meta()
        filters = filters_of(meta, params)
        page = count_param(params, "page", None, MAX_PAGE)
        size = count_param(params, "page_size", None, MAX_PAGE)
        rows = cls.objects.filter(**filters).order_by("id")
        if page is None and size is None:
            return {"items": [o.to_dict() for o in rows]}
        size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        start = ((page or 1) - 1) * size
        return {"items": [o.to_dict() for o in rows[start : start + size]]}

    @staticmethod
    def caller_of(request: Request, user: User) -> CallerKind:
        """Who saves, as XOS's API was told (`caller_kind`): the `X-XOS-Caller` header,
        `user` by default. A synchronizer's engines say `sync`, `policy`, `pull` or `event`,
        so that their saves move the timestamps a local engine's would."""
        kind = request.headers.get(CALLER_HEADER, "user")
        if kind not in CALLER_KINDS:
            expected = ", ".join(CALLER_KINDS)
            raise ApiError(400, f"{CALLER_HEADER}: expected one of {expected}", field=CALLER_HEADER)
        if kind != "user" and not user.synchronizer:
            raise ApiError(
                403, f"{CALLER_HEADER}: {kind} is for synchronizers", field=CALLER_HEADER
            )
        return kind

    def create(
        self, cls: type[ModelObject], body: Any, user: User, caller: CallerKind = "user"
    ) -> dict[str, Any]:
        meta = cls.model_meta()
        values = writes_of(meta, body, user, creating=True)
        with self.accessor.atomic(), acting_as(caller):
            obj = cls(**values)
            obj.save()
        return self.live(cls, obj.id or 0).to_dict()

    def update(
        self,
        cls: type[ModelObject],
        object_id: int,
        body: Any,
        user: User,
        caller: CallerKind = "user",
    ) -> dict[str, Any]:
        meta = cls.model_meta()
        values = writes_of(meta, body, user, creating=False, object_id=object_id)
        with self.accessor.atomic(), acting_as(caller):
            obj = self.live(cls, object_id)
            for column, value in values.items():
                obj.__dict__[column] = value
            # The named fields only: `updated` moves when object data is among them (a
            # synchronizer's feedback alone does not make the object pending again).
            obj.save(update_fields=list(values))
        return self.live(cls, object_id).to_dict()

    def pending(self, cls: type[ModelObject], params: dict[str, str], *, policy: bool) -> Any:
        """What the engines would work on: objects to sync (changed since enacted) or to
        police, or with `?deleted=true` the deleted ones awaiting `delete_record` or
        `handle_delete`; the accessor's own queries (`fetch_pending`,
        `fetch_policy_pending`)."""
        deleted = _flag(params, "deleted")
        after = count_param(params, "after", None, MAX_ID) or 0
        limit = count_param(params, "limit", PENDING_PAGE, MAX_PENDING_PAGE)
        found = self.accessor.pending_page(
            cls.model_meta().name, policy=policy, deleted=deleted, after=after, limit=limit
        )
        more = len(found) == limit
        return {"items": [o.to_dict() for o in found], "next": found[-1].id if more else None}

    def delete(self, cls: type[ModelObject], object_id: int) -> None:
        obj = self.live(cls, object_id)
        obj.delete()
        if not obj.deleted:
            raise ApiError(
                409,
                f"{cls.model_meta().name} id {object_id} has write_protect set",
                field="write_protect",
            )


def _flag(params: dict[str, str], name: str) -> bool:
    text = params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise ApiError(400, f"{name}: expected true or false, got {text!r}", field=name)
    return text in ("true", "1")


def build_app(
    accessor: ModelAccessor,
    users: Users,
    *,
    limit: FailureLimit | None = None,
    retention: float | None = None,
) -> Starlette:
    """The core's application over `accessor`, authenticating against `users`; the store's
    event bus keeps messages `retention` seconds (`event_bus.retention`; None: no sweep)."""
    api = CoreApi(accessor, users, limit or FailureLimit())
    feed = ChangeFeed(accessor)
    events = EventApi(accessor.store.event_log, retention=retention)
    leases = RemoteLeases(accessor)
    bookkeeping = Bookkeeping(accessor)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def version(_request: Request) -> Response:
        return JSONResponse({"version": CORE_API_VERSION, "xos_runtime": __version__})

    async def openapi(request: Request) -> Response:
        await api.user(request)
        return JSONResponse(api.document)

    async def collection(request: Request) -> Response:
        user = await api.user(request)
        cls = api.model_of(request)
        if request.method == "GET":
            params = dict(request.query_params)
            return JSONResponse(await in_thread(api.list, cls, params))
        caller = api.caller_of(request, user)
        body = await api.body_of(request)
        created = await in_thread(api.create, cls, body, user, caller)
        return JSONResponse(created, status_code=201)

    async def item(request: Request) -> Response:
        user = await api.user(request)
        cls = api.model_of(request)
        oid = api.object_id(request)
        if request.method == "GET":
            found = await in_thread(api.live, cls, oid)
            return JSONResponse(found.to_dict())
        if request.method == "PUT":
            caller = api.caller_of(request, user)
            body = await api.body_of(request)
            return JSONResponse(await in_thread(api.update, cls, oid, body, user, caller))
        await in_thread(api.delete, cls, oid)
        return Response(status_code=204)

    async def pending(request: Request) -> Response:
        await api.user(request)
        cls = api.model_of(request)
        policy = request.url.path.endswith("/policy_pending")
        params = dict(request.query_params)
        return JSONResponse(await in_thread(api.pending, cls, params, policy=policy))

    async def outcomes(request: Request) -> Response:
        user = await api.synchronizer(request, "outcomes")
        body = await api.body_of(request)
        stored = await in_thread(write_outcomes, api.accessor, leases, user, body)
        return JSONResponse(stored)

    async def rows(request: Request) -> Response:
        await api.synchronizer(request, "rows")
        body = await api.body_of(request)
        return JSONResponse(await in_thread(read_rows, api.accessor, body))

    async def lease_new(request: Request) -> Response:
        user = await api.synchronizer(request, "leases")
        body = await api.body_of(request)
        client = request.client.host if request.client else "unknown"
        made = await in_thread(leases.register, user, client, body)
        return JSONResponse(made, status_code=201)

    async def lease(request: Request) -> Response:
        user = await api.synchronizer(request, "leases")
        owner = request.path_params["owner"]
        if request.method == "PUT":
            return JSONResponse(await in_thread(leases.renew, user, owner))
        await in_thread(leases.close, user, owner)
        return Response(status_code=204)

    async def reap(request: Request) -> Response:
        user = await api.synchronizer(request, "leases")
        body = await api.body_of(request)
        owner = request.path_params["owner"]
        return JSONResponse(await in_thread(leases.reap, user, owner, body))

    async def held(request: Request) -> Response:
        await api.synchronizer(request, "claims")
        found = await in_thread(api.accessor.held_claims)
        return JSONResponse({"held": [held_to_dict(h) for h in found]})

    async def in_code(request: Request) -> Response:
        await api.synchronizer(request, "codes")
        code = api.object_id_param(request, "code")
        return JSONResponse({"count": await in_thread(api.accessor.count_with_code, code)})

    async def claim(request: Request) -> Response:
        if request.method == "GET":
            return await held(request)
        user = await api.synchronizer(request, "claims")
        body = await api.body_of(request)
        release = request.url.path.endswith("/release")
        work = leases.release if release else leases.claim
        return JSONResponse(await in_thread(work, user, body))

    async def models(request: Request) -> Response:
        if request.method == "GET":
            await api.user(request)
            return JSONResponse(api.served_models())
        await api.synchronizer(request, "loading models")
        body = await api.body_of(request)
        return JSONResponse(await in_thread(api.load_models, body))

    async def status(request: Request) -> Response:
        await api.user(request)
        report = await in_thread(collect_status, api.accessor, time.time())
        return JSONResponse(report.to_dict())

    async def status_page(request: Request) -> Response:
        await api.user(request)
        model = request.path_params.get("model")
        if model is None:
            return JSONResponse(await in_thread(status_view, api.accessor, time.time()))
        view = await in_thread(model_view, api.accessor, model, time.time())
        if view is None:
            raise ApiError(404, f"no model named {model!r}")
        return JSONResponse(view)

    async def changes(request: Request) -> Response:
        await api.user(request)
        params = dict(request.query_params)
        timeout = seconds_param(params, "timeout", DEFAULT_FEED_WAIT, MAX_FEED_WAIT)
        if "since" not in params:
            return JSONResponse(feed.since(feed.seq))
        try:
            since = int(params["since"])
        except ValueError:
            raise ApiError(400, "since: expected a sequence number", field="since") from None
        return JSONResponse(await feed.wait(since, timeout))

    async def event_topic(request: Request) -> Response:
        if request.method == "POST":  # any user may publish, as any process on the store
            await api.user(request)
            topic = topic_of(request.path_params["topic"])
            body = await api.body_of(request)
            published = await in_thread(events.publish, topic, body)
            return JSONResponse(published, status_code=201)
        user = await api.synchronizer(request, "consuming events")
        topic = topic_of(request.path_params["topic"])
        group, member, most, wait, positions = events.fetch_params(request.query_params)
        owner = owner_of(user.name, member)
        if request.method == "DELETE":
            await in_thread(events.leave, topic, group, owner)
            return Response(status_code=204)
        return JSONResponse(await events.fetch(topic, group, owner, most, wait, positions))

    async def event_topics(request: Request) -> Response:
        await api.synchronizer(request, "consuming events")
        return JSONResponse(await in_thread(events.topics))

    async def event_commit(request: Request) -> Response:
        user = await api.synchronizer(request, "committing events")
        topic = topic_of(request.path_params["topic"])
        body = await api.body_of(request)
        return JSONResponse(await in_thread(events.commit, topic, user.name, body))

    async def schedule(request: Request) -> Response:
        await api.synchronizer(request, "the schedule")
        body = await api.body_of(request)
        job = request.path_params["job"]
        return JSONResponse(await in_thread(bookkeeping.take, job, body))

    async def attempts(request: Request) -> Response:
        await api.synchronizer(request, "event attempts")
        body = await api.body_of(request)
        group = request.path_params["group"]
        op = request.url.path.rsplit("/", 1)[1]
        work = {"failed": bookkeeping.failed, "load": bookkeeping.load}.get(op, bookkeeping.forget)
        return JSONResponse(await in_thread(work, group, body))

    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(ApiError(exc.status_code, str(exc.detail), headers=exc.headers))

    async def store_error(_request: Request, exc: Exception) -> Response:
        # A rule the body checks did not foresee: still the client's, still nothing written.
        status = 404 if isinstance(exc, DoesNotExist) else 400
        status = status if isinstance(exc, ObjectValidationError | DoesNotExist) else 409
        return _error(ApiError(status, str(exc)))

    async def database_error(request: Request, exc: Exception) -> Response:
        if transient(exc):  # the store is busy or away: nothing was written, try again
            logger.warning("core: the store did not answer: {}", exc)
            return _error(ApiError(503, "the store is busy or away", headers={"Retry-After": "1"}))
        return await internal(request, exc)

    async def internal(_request: Request, exc: Exception) -> Response:
        logger.opt(exception=exc).error("core: internal error: {}", exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        ApiError: api_error,
        HTTPException: http_error,
        StoreError: store_error,
        sa.exc.DBAPIError: database_error,
        Exception: internal,
    }
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route(f"{API_PREFIX}/version", version, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route(f"{API_PREFIX}/changes", changes, methods=["GET"]),
        Route(f"{API_PREFIX}/outcomes", outcomes, methods=["POST"]),
        Route(f"{API_PREFIX}/rows", rows, methods=["POST"]),
        Route(f"{API_PREFIX}/models", models, methods=["GET", "POST"]),
        Route(f"{API_PREFIX}/status", status, methods=["GET"]),
        Route(f"{API_PREFIX}/status/page", status_page, methods=["GET"]),
        Route(f"{API_PREFIX}/status/page/{{model}}", status_page, methods=["GET"]),
        Route(f"{API_PREFIX}/leases", lease_new, methods=["POST"]),
        Route(f"{API_PREFIX}/leases/{{owner}}", lease, methods=["PUT", "DELETE"]),
        Route(f"{API_PREFIX}/leases/{{owner}}/reap", reap, methods=["POST"]),
        Route(f"{API_PREFIX}/claims", claim, methods=["GET", "POST"]),
        Route(f"{API_PREFIX}/codes/{{code}}", in_code, methods=["GET"]),
        Route(f"{API_PREFIX}/claims/release", claim, methods=["POST"]),
        Route(f"{API_PREFIX}/events", event_topics, methods=["GET"]),
        Route(f"{API_PREFIX}/events/{{topic}}", event_topic, methods=["GET", "POST", "DELETE"]),
        Route(f"{API_PREFIX}/events/{{topic}}/commit", event_commit, methods=["POST"]),
        Route(f"{API_PREFIX}/schedule/{{job:path}}", schedule, methods=["POST"]),
        *(
            Route(f"{API_PREFIX}/attempts/{{group:path}}/{op}", attempts, methods=["POST"])
            for op in ("failed", "load", "forget")
        ),
        Route(f"{API_PREFIX}/{{app}}/{{plural}}", collection, methods=["GET", "POST"]),
        Route(f"{API_PREFIX}/{{app}}/{{plural}}/pending", pending, methods=["GET"]),
        Route(f"{API_PREFIX}/{{app}}/{{plural}}/policy_pending", pending, methods=["GET"]),
        Route(f"{API_PREFIX}/{{app}}/{{plural}}/{{id}}", item, methods=["GET", "PUT", "DELETE"]),
    ]
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.feed = feed
    app.state.events = events
    return app
