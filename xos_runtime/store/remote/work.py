"""A remote runtime's share of the work: its lease, its claims and its outcome batches,
held by the core on its behalf (`core/leases.py`, `core/outcomes.py`).

`CoreLease` and `CoreClaims` have the faces of the local `Lease` and `Claims` that the
engines use, so the engines run unchanged over a core. The core judges a remote lease by
its expiry alone (it cannot look the process up): `CoreLease` renews it every third of its
`ttl` from a thread of its own. When the core restarted (it forgot the lease: 404), the
lease registers again under the same owner, so its claims stay its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from loguru import logger

from xos_runtime.exceptions import DoesNotExist
from xos_runtime.store.claims import ClaimKey, HeldClaims, OwnerInfo, ProcessIdentity
from xos_runtime.store.outcomes import ClaimResult, OutcomeBatch
from xos_runtime.store.remote.client import CoreClient

__all__ = [
    "CLAIMS_PATH",
    "CODES_PATH",
    "CoreClaims",
    "CoreLease",
    "batch_body",
    "claims_path",
    "held_from_dict",
    "store_batch",
]

LEASES_PATH = "/xosapi/v1/leases"
CLAIMS_PATH = "/xosapi/v1/claims"
OUTCOMES_PATH = "/xosapi/v1/outcomes"
CODES_PATH = "/xosapi/v1/codes"


def _keys(keys: Iterable[ClaimKey]) -> list[list[Any]]:
    return [[root, oid] for root, oid in sorted(set(keys))]


def claims_path(release: bool = False) -> str:
    return CLAIMS_PATH + ("/release" if release else "")


class CoreLease:
    """A remote runtime's registration with its core (the face of `store.Lease`)."""

    def __init__(
        self,
        client: CoreClient,
        *,
        ttl: float = 60.0,
        shares_work: bool = True,
        name: str = "",
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.ttl = ttl
        self.shares_work = shares_work
        self.name = name
        self.clock = clock
        self.owner = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._share = (0, 1)

    def _path(self, suffix: str = "") -> str:
        return f"{LEASES_PATH}/{self.owner}{suffix}"

    def register(self) -> None:
        """Register with the core (once); again under the same owner after a restart."""
        with self._lock:
            if self.owner:
                return
            self._register()

    def _register(self) -> None:
        body: dict[str, Any] = {"name": self.name, "ttl": self.ttl, "shares_work": self.shares_work}
        if self.owner:
            body["owner"] = self.owner
        made = self.client.post(LEASES_PATH, body, idempotent=True)
        self.owner = str(made["owner"])

    def _call(self, send: Callable[[], Any]) -> Any:
        """`send()`, registering again first when the core forgot this lease."""
        self.register()
        try:
            return send()
        except DoesNotExist:
            with self._lock:
                logger.info(
                    "the core forgot this runtime's lease {}; registering again", self.owner
                )
                self._register()
            return send()

    def renew(self) -> None:
        self._call(lambda: self.client.put(self._path(), {}))

    def start_heartbeat(self) -> None:
        """Renew the lease every third of its time, in a daemon thread, until `close()`."""
        self.register()
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, name="xos-runtime-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except Exception as exc:  # the core is away: the client said so; try again later
                logger.opt(exception=exc).debug("lease renewal failed")

    def close(self) -> None:
        """Stop the heartbeat and end the lease (the core drops its claims)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if not self.owner:
            return
        try:
            self.client.delete(self._path())
        except Exception as exc:  # a gone core: the lease expires
            logger.opt(exception=exc).debug("could not end this runtime's lease")

    def share(self) -> tuple[int, int]:
        """(this runtime's rank, how many processes share the work), as the last `reap` saw
        them (see `Lease.share`)."""
        return self._share

    def reap(self, kinds: Sequence[str] = ()) -> dict[str, int]:
        """Take over from gone processes (the core does it); the claims taken, by a
        description of who held them (empty when nobody was gone or held nothing)."""
        found = self._call(
            lambda: self.client.post(self._path("/reap"), {"kinds": list(kinds)}, idempotent=True)
        )
        self._share = (int(found["rank"]), int(found["count"]))
        taken = int(found["taken"])
        return {"gone processes": taken} if taken else {}

    def claims(self, kind: str) -> CoreClaims:
        """The claims of one engine (`kind`) of this runtime."""
        return CoreClaims(self, kind)


class CoreClaims:
    """The claims of one engine of a remote runtime (the face of `store.Claims`)."""

    def __init__(self, lease: CoreLease, kind: str):
        self.lease = lease
        self.kind = kind

    @property
    def owner(self) -> str:
        return self.lease.owner

    def _send(self, body: dict[str, Any], release: bool = False) -> Any:
        client = self.lease.client

        def send() -> Any:
            full = {"owner": self.owner, "kind": self.kind, **body}
            return client.post(claims_path(release), full, idempotent=True)

        return self.lease._call(send)

    def claim(self, keys: Iterable[ClaimKey], pending: str | None = None) -> set[ClaimKey]:
        """Claim what nobody holds (with `pending`, a name of `store.PENDING`, only rows
        still pending that way)."""
        wanted = _keys(keys)
        if not wanted:
            return set()
        got = self._send({"keys": wanted, "pending": pending})
        return {(str(r), int(i)) for r, i in got["claimed"]}

    def claim_work(self, model_names: Iterable[str]) -> dict[str, set[int]]:
        """Claim everything model policies of `model_names` have to handle now."""
        got = self._send({"work": sorted(set(model_names))})
        out: dict[str, set[int]] = {}
        for root, oid in got["claimed"]:
            out.setdefault(str(root), set()).add(int(oid))
        return out

    def release(self, keys: Iterable[ClaimKey]) -> None:
        todo = _keys(keys)
        if todo:
            self._send({"keys": todo}, release=True)

    def release_all(self, keep: Iterable[ClaimKey] = ()) -> None:
        """Drop every claim of this kind but `keep` (calls still running)."""
        self._send({"keys": _keys(keep), "all": True}, release=True)


def batch_body(batch: OutcomeBatch, claims: CoreClaims | None) -> dict[str, Any]:
    """An `OutcomeBatch` as the core's outcome route takes it."""
    body: dict[str, Any] = {
        "updates": [
            {"model": root, "id": row["id"], "fields": {c: row[c] for c in columns}}
            for (root, columns), rows in batch.updates.items()
            for row in rows
        ],
        "purges": [{"model": leaf, "id": i} for leaf, ids in batch.purges.items() for i in ids],
    }
    if batch.restore:
        body["restore"] = [
            {"model": r.key[0], "id": r.key[1], "expected": r.expected, "text": r.text}
            for r in batch.restore
        ]
    if claims is not None and batch.needs_claims():
        body.update(owner=claims.owner, kind=claims.kind)
        if batch.claim is not None:
            c = batch.claim
            body["claim"] = {
                "keys": _keys(c.keys),
                "pending": c.pending,
                "columns": list(c.columns),
                "adopt_own": c.adopt_own,
            }
        body["release"] = _keys(batch.release)
        body["keep"] = _keys(batch.keep)
    return body


def store_batch(
    client: CoreClient, batch: OutcomeBatch, claims: CoreClaims | None
) -> ClaimResult | None:
    """Send `batch` to the core, which stores it in one transaction (`apply_batch`).

    Sent again when the answer is lost: its writes are by id and idempotent, and its claim
    is sent with `adopt_own` by the engine's retry."""
    if batch.needs_claims() and claims is None:
        raise ValueError("a batch that claims, releases or keeps claims needs the claims")

    def send() -> Any:
        return client.post(OUTCOMES_PATH, batch_body(batch, claims), idempotent=True)

    answer: Mapping[str, Any] = claims.lease._call(send) if claims is not None else send()
    if batch.claim is None:
        return None
    held = {(str(r), int(i)) for r, i in answer.get("claimed", [])}
    rows = {(str(e["model"]), int(e["id"])): dict(e["row"]) for e in answer.get("rows", [])}
    return ClaimResult(held, rows)


def held_from_dict(raw: Mapping[str, Any]) -> HeldClaims:
    """A `HeldClaims` from the core's JSON of it (`GET /xosapi/v1/claims`)."""
    process = raw.get("process")
    info = None
    if process is not None:
        info = OwnerInfo(
            str(process["owner"]),
            ProcessIdentity(**process["identity"]),
            float(process["expires"]),
            bool(process["shares_work"]),
            str(process["name"]),
        )
    return HeldClaims(
        str(raw["owner"]), info, str(raw["kind"]), int(raw["count"]), int(raw["abandoned"])
    )
