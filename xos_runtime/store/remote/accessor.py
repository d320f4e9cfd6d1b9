"""`RemoteAccessor`: the model accessor of a script (or a command) over an XOS core.

`open_remote("http://host:port", username=..., password=...)` asks the core which models it
serves (`GET /xosapi/v1/models`: their definitions and paths) and builds a class per model,
with the same API as a local accessor's (`accessor.Site.objects.filter(...)`,
`Site(name=...).save()`, links, `to_dict()`, `deleted_objects`, `get_model_class`,
`close()`). The first request also checks the credentials: a refusal is a `CoreAuthError`
naming the user and the core.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from xos_runtime.config import Settings
from xos_runtime.config.coreversion import check_core_version
from xos_runtime.exceptions import DoesNotExist, StoreError
from xos_runtime.models.definitions import Model, ModelSet
from xos_runtime.store.claims import HeldClaims
from xos_runtime.store.classes import ModelClasses
from xos_runtime.store.outcomes import ClaimResult, OutcomeBatch
from xos_runtime.store.remote.bookkeeping import RemoteEventAttempts, RemoteSchedule
from xos_runtime.store.remote.client import CoreClient
from xos_runtime.store.remote.events import CoreEvents
from xos_runtime.store.remote.feed import RemoteSubscription
from xos_runtime.store.remote.objects import RemoteObject, build_remote_class
from xos_runtime.store.remote.rows import load_rows
from xos_runtime.store.remote.work import (
    CLAIMS_PATH,
    CODES_PATH,
    CoreClaims,
    CoreLease,
    held_from_dict,
    store_batch,
)

__all__ = [
    "MODELS_PATH",
    "STATUS_PATH",
    "VERSION_PATH",
    "RemoteAccessor",
    "RemoteStore",
    "client_for",
    "open_remote",
    "open_settings",
]

#: Where a core says which models it serves (and, by POST, synchronizers load theirs).
MODELS_PATH = "/xosapi/v1/models"
#: Where a core says its XOS API version (no credentials needed).
VERSION_PATH = "/xosapi/v1/version"
STATUS_PATH = "/xosapi/v1/status"
#: Objects per page of a pending read.
PENDING_PAGE = 2_000


class RemoteStore:
    """The core behind a remote accessor: its models and the calls on their rows."""

    def __init__(self, client: CoreClient, models: ModelSet, paths: Mapping[str, str]):
        self.client = client
        self.models = models
        self.paths = dict(paths)
        #: What objects compare by, as a local store's URL (`ModelObject.__eq__`).
        self.endpoint = client.base
        self.clock: Callable[[], float] = time.time

    def path(self, model: str, object_id: int | None = None) -> str:
        try:
            base = self.paths[model]
        except KeyError:
            raise StoreError(f"the core at {self.endpoint} serves no path for {model}") from None
        return base if object_id is None else f"{base}/{quote(str(object_id))}"

    def rows(self, model: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.get(self.path(model), params)["items"]
        return found

    def deleted(self, model: str) -> list[dict[str, Any]]:
        return self.pending(model, "pending", deleted=True)

    def pending(self, model: str, kind: str, *, deleted: bool) -> list[dict[str, Any]]:
        """The rows the sync steps (`kind` "pending") or the policies ("policy_pending")
        would work on, or with `deleted` the deleted ones awaiting them: the core's own
        queries (`fetch_pending`, `fetch_policy_pending`), read page by page."""
        found: list[dict[str, Any]] = []
        params = {"deleted": "true" if deleted else "false", "limit": str(PENDING_PAGE)}
        while True:  # by pages, in id order
            page = self.client.get(f"{self.path(model)}/{kind}", params)
            found.extend(page["items"])
            if page.get("next") is None:
                return found
            params["after"] = str(int(page["next"]))

    def live_or_deleted(
        self, model: str, conditions: Iterable[tuple[str, str, Any]]
    ) -> list[dict[str, Any]]:
        """Rows live or deleted: by id when a condition names one (links may point at a
        deleted row), else every row (the caller filters)."""
        ids = [v for c, op, v in conditions if c == "id" and op == "exact"]
        if ids and isinstance(ids[0], int):
            try:
                return [self.client.get(self.path(model, ids[0]))]
            except DoesNotExist:
                return [r for r in self.deleted(model) if r.get("id") == ids[0]]
        return [*self.rows(model, {}), *self.deleted(model)]

    def create(
        self, model: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        return dict(self.client.post(self.path(model), dict(body), headers))

    def update(
        self, model: str, object_id: int, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        return dict(self.client.put(self.path(model, object_id), dict(body), headers))

    def delete(self, model: str, object_id: int) -> None:
        self.client.delete(self.path(model, object_id))

    def close(self) -> None:
        self.client.close()


class RemoteAccessor(ModelClasses[RemoteObject]):
    """Model classes by name over a core: what `xos_runtime.connect("http://...")` returns."""

    def __init__(self, store: RemoteStore):
        self.store = store
        self._where = f"at the core {store.endpoint}"
        self._build_all()

    def _make_class(self, name: str, parent: type[RemoteObject] | None) -> type[RemoteObject]:
        return build_remote_class(name, self, parent)

    @property
    def models(self) -> ModelSet:
        return self.store.models

    @property
    def endpoint(self) -> str:
        return self.store.endpoint

    def now(self) -> float:
        return self.store.clock()

    def obj_exists(self, obj: RemoteObject) -> bool:
        return obj.id is not None

    def create_obj(self, cls: type[RemoteObject], **kwargs: Any) -> RemoteObject:
        return cls(**kwargs)

    def check_db_connection_okay(self) -> bool:
        """Whether the core answers this user (waiting for it up to `retry_for`)."""
        self.store.client.get(MODELS_PATH)
        return True

    def reset_queries(self) -> None:
        """XOS compatibility: nothing to reset here."""

    def journal_object(self, obj: Any, action: str, msg: str = "", *_a: Any) -> None:
        """XOS compatibility: the runtime records outcomes through hooks and logs instead."""

    def obj_in_list(self, obj: RemoteObject, objs: Iterable[RemoteObject]) -> bool:
        return any(o.id == obj.id for o in objs)

    def fetch_pending(self, model_names: Iterable[str], deleted: bool = False) -> list[Any]:
        """Objects to sync (changed since enacted) or, with `deleted`, to delete, as the
        core finds them."""
        return self._pending(model_names, "pending", deleted)

    def fetch_policy_pending(self, model_names: Iterable[str], deleted: bool = False) -> list[Any]:
        """Objects to police (changed since policed), or deleted ones awaiting handle_delete."""
        return self._pending(model_names, "policy_pending", deleted)

    def _pending(self, model_names: Iterable[str], kind: str, deleted: bool) -> list[Any]:
        names = [model_names] if isinstance(model_names, str) else list(model_names)
        seen: set[tuple[str, int]] = set()
        out: list[RemoteObject] = []
        for name in names:
            cls = self.get_model_class(name)
            root = self.models.root(name)
            for row in self.store.pending(name, kind, deleted=deleted):
                key = (root, int(row["id"]))
                if key not in seen:
                    seen.add(key)
                    out.append(cls._from_json(row))
        return out

    def fetch_policy_work(
        self, model_names: Iterable[str], only: Mapping[str, Container[int]] | None = None
    ) -> tuple[list[Any], list[tuple[str, int]]]:
        """Everything model policies of `model_names` have to handle now, as the local
        accessor's `fetch_policy_work`: the objects changed since policed and the deleted
        ones awaiting `handle_delete`, of those models and their sub-models, each as its
        most derived object; with `only` (ids by root model), the keys of the other rows
        come second (another process holds them).

        Two requests per model (`policy_pending`, then with `deleted=true`), and two more
        per sub-model whose rows came back through a base model, for their own fields: a
        row no longer pending by then is left for the next pass."""
        names = [model_names] if isinstance(model_names, str) else sorted(set(model_names))
        seen: set[tuple[str, int]] = set()
        others: list[tuple[str, int]] = []
        found: dict[tuple[str, int], tuple[str, Mapping[str, Any]]] = {}
        through: dict[str, set[tuple[str, int]]] = {}  # leaf -> keys read as a base model
        for name in names:
            root = self.models.root(name)
            for row in self._policy_rows(name):
                key = (root, int(row["id"]))
                if key in seen:
                    continue
                seen.add(key)
                if only is not None and key[1] not in only.get(root, ()):
                    others.append(key)
                    continue
                leaf = row.get("leaf_model_name") or root
                if leaf == name:
                    found[key] = (leaf, row)
                else:
                    through.setdefault(leaf, set()).add(key)
        for leaf, keys in sorted(through.items()):
            root = self.models.root(leaf)
            for leaf_row in self._policy_rows(leaf):
                key = (root, int(leaf_row["id"]))
                if key in keys and (leaf_row.get("leaf_model_name") or root) == leaf:
                    found[key] = (leaf, leaf_row)
        groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for key in sorted(found):  # by table, then by leaf model in id order, as locally
            leaf, found_row = found[key]
            groups.setdefault((key[0], leaf), []).append(found_row)
        objects: list[RemoteObject] = []
        for (_root, leaf), rows in groups.items():
            cls = self.get_model_class(leaf)
            objects.extend(cls._from_json(row) for row in rows)
        return objects, sorted(others)

    def _policy_rows(self, name: str) -> list[dict[str, Any]]:
        return [
            *self.store.pending(name, "policy_pending", deleted=False),
            *self.store.pending(name, "policy_pending", deleted=True),
        ]

    def load_rows(
        self,
        keys: Iterable[tuple[str, int]],
        conn: Any = None,
        columns: Sequence[str] = (),
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """Rows by `(root model, id)`, live or deleted, as the local accessor's `load_rows`
        gives them (the core runs it: the same dicts, links as `site_id`); missing rows are
        absent; with `columns` (`id` first) only those. `conn` is a local store's: over a
        core each request is its own transaction, and it is not used."""
        if columns:
            assert columns[0] == "id", columns
        return load_rows(self.store.client, keys, columns)

    def subscribe(self) -> RemoteSubscription:
        """A subscription woken by every committed change of the core's store, from its
        change feed (a thread per subscription: `close()` it)."""
        return RemoteSubscription(self.store.client, lambda: [m.name for m in self.models])

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to hold: over a core, each request is its own snapshot of the store (a
        local accessor's `snapshot()` makes a block's reads see one state). Engines that
        read in several requests see later states in later ones, and re-check what they
        claimed."""
        return contextlib.nullcontext()

    def schedule(self, owner: str) -> RemoteSchedule:
        """The shared schedule of interval jobs (pull steps) in the core's store, as process
        `owner` takes its runs (`Schedule`'s rule, run by the core)."""
        return RemoteSchedule(self.store.client, owner)

    def event_attempts(self, group: str) -> RemoteEventAttempts:
        """The failed calls of the messages of consumer group `group`, in the core's store."""
        return RemoteEventAttempts(self.store.client, group)

    def atomic(self) -> Any:
        raise StoreError(
            f"accessor.atomic(): not supported over a core ({self.endpoint}): each save, "
            "create and delete is its own transaction there"
        )

    def publish_event(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        """Publish one message to the core's event bus (the log in its store, where its
        processes' event steps read); its `(partition, offset)`. As a local accessor's: a
        str key or value is sent as UTF-8, bytes as they are; `headers` are `(name, bytes)`.

        Not retried once sent (it would publish twice): a core that went away after the
        request left is a `CoreUnavailable` saying so."""
        return CoreEvents(self.store.client).publish(topic, key, value, headers)

    # -- the engines' share of the work (`work.py`) -------------------------------------------

    def lease(
        self,
        *,
        ttl: float = 60.0,
        shares_work: bool = True,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ) -> CoreLease:
        """This runtime's registration with the core (`CoreLease`, the face of `Lease`)."""
        return CoreLease(
            self.store.client, ttl=ttl, shares_work=shares_work, name=name, clock=clock
        )

    #: Whether the store is a core over HTTP: always here (`ModelAccessor.remote` is False).
    remote = True

    @property
    def shared(self) -> bool:
        """A core is shared: a `run` over it registers a lease and claims its work."""
        return True

    def held_claims(self) -> list[HeldClaims]:
        """Every process's claims on the core's store, by owner and engine."""
        return [held_from_dict(h) for h in self.store.client.get(CLAIMS_PATH)["held"]]

    def core_status(self) -> dict[str, Any]:
        """What `xos-runtime status --json` says of the core's store (`GET .../status`)."""
        return dict(self.store.client.get(STATUS_PATH))

    def status_page(self) -> dict[str, Any]:
        """The status page's view of the core's store (its `/api/status`)."""
        return dict(self.store.client.get(f"{STATUS_PATH}/page"))

    def model_page(self, model: str) -> dict[str, Any] | None:
        """The status page's view of a model's objects; None for a model the core lacks."""
        try:
            return dict(self.store.client.get(f"{STATUS_PATH}/page/{quote(model, safe='')}"))
        except DoesNotExist:
            return None

    def count_with_code(self, code: int) -> int:
        """Objects whose last sync or policy ended with `code` (as a local store counts)."""
        return int(self.store.client.get(f"{CODES_PATH}/{int(code)}")["count"])

    def store_outcomes(
        self, batch: OutcomeBatch, claims: CoreClaims | None = None
    ) -> ClaimResult | None:
        """Send an engine's `OutcomeBatch` to the core, which stores it in one transaction."""
        return store_batch(self.store.client, batch, claims)

    def claim_policy_work(
        self, claims: CoreClaims, model_names: Iterable[str]
    ) -> dict[str, set[int]]:
        """Claim, through the core, everything model policies of `model_names` have to
        handle now: ids by root model."""
        return claims.claim_work(model_names)

    def close(self) -> None:
        self.store.close()


def open_remote(
    endpoint: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | None = None,
    retry_for: float = 30.0,
    client: CoreClient | None = None,
) -> RemoteAccessor:
    """The accessor of the core at `endpoint` (`http(s)://[user:password@]host:port`).

    Waits up to `retry_for` seconds for a core that does not answer yet
    (`CoreUnavailable` after); refused credentials are a `CoreAuthError`.
    """
    if client is None:
        client = CoreClient(
            endpoint,
            username=username,
            password=password,
            ca_file=ca_file,
            retry_for=retry_for,
        )
    try:
        found = client.get(MODELS_PATH)
        models = ModelSet({d["name"]: Model.from_dict(d) for d in found["models"]})
        return RemoteAccessor(RemoteStore(client, models, found["paths"]))
    except BaseException:
        client.close()
        raise


def client_for(settings: Settings) -> CoreClient:
    """The client of a config whose `accessor.endpoint` is a core: its user, password
    (`@file` already read), `ca_file` and `retry_for`. With `core_version` in the config,
    the core's own API version (`/xosapi/v1/version`) must satisfy it (`ConfigError`)."""
    a = settings.accessor
    client = CoreClient(
        a.endpoint,
        username=a.username,
        password=a.password,
        ca_file=a.ca_file,
        retry_for=a.retry_for,
    )
    try:
        if settings.core_version is not None:
            version = str(client.get(VERSION_PATH).get("version"))
            check_core_version(settings.core_version, version=version, file=settings.source)
    except BaseException:
        client.close()
        raise
    return client


def open_settings(
    settings: Settings, models: tuple[str, Sequence[tuple[str, str]]] | None = None
) -> RemoteAccessor:
    """The accessor of a config whose `accessor.endpoint` is a core (`client_for`); with
    `models` (a synchronizer's name and its xproto files as `(filename, text)`), those are
    loaded into the core first (as XOS's LoadModels: the store evolves, or a 409 says why
    not)."""
    client = client_for(settings)
    if models is not None and models[1]:
        name, files = models
        body = {
            "name": name,
            "xprotos": [{"filename": Path(f).name, "contents": text} for f, text in files],
        }
        try:
            client.post(MODELS_PATH, body, idempotent=True)
        except BaseException:
            client.close()
            raise
    return open_remote(settings.accessor.endpoint, client=client)
