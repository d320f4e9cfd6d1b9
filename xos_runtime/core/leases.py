"""Leases and claims of remote runtimes: the core holds them on their behalf.

A remote `run` shares the work with the local ones through the same rows (`store.claims`):
it registers a lease, claims objects before it works on them, releases them, and renews its
lease while it lives. The core cannot look a remote process up in its process table, so a
remote lease is judged by its expiry only: when its runtime stops renewing it (crashed,
cut off), its claims are taken over once the lease has run out, and never before. The core
runs no heartbeat for it: only the runtime's renewals keep it alive.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from xos_runtime.core.bodies import object_keys
from xos_runtime.core.errors import ApiError
from xos_runtime.core.users import User
from xos_runtime.store import (
    PENDING,
    ClaimKey,
    Claims,
    HeldClaims,
    Lease,
    ModelAccessor,
    ProcessIdentity,
)

__all__ = ["RemoteLease", "RemoteLeases", "held_to_dict"]

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: The owners this core gives remote leases (`RemoteLease`).
_OWNER = re.compile(r"^remote:[^:]{1,200}@[^:@\s]{1,100}:[0-9a-f]{12}$")


class RemoteLease(Lease):
    """A `Lease` of a runtime elsewhere: renewed by its requests only, never by a thread."""

    def __init__(
        self, accessor: ModelAccessor, client: str, user: str, owner: str = "", **kwargs: Any
    ):
        super().__init__(accessor.store, **kwargs)
        # "unknown" boot: no process table is ever asked about it, the expiry decides
        self.identity = ProcessIdentity(f"remote {client}", "unknown", 0, "?")
        self.owner = owner or owner_for(user, client)
        self._company = [self.owner]
        self.user = user
        #: When the runtime last registered or renewed it (this core's clock).
        self.seen = self.clock()

    def start_heartbeat(self) -> None:
        self.register()


def owner_for(user: str, client: str) -> str:
    """A new remote lease's owner: `remote:<user>@<client>:<12 hex digits>` (the client's
    address with its colons as dots), so that only its user may bring it back."""
    return f"remote:{user}@{client.replace(':', '.')}:{uuid.uuid4().hex[:12]}"


def user_of_owner(owner: str) -> str:
    """The user a remote lease's owner names (`owner_for`)."""
    return owner.split(":", 2)[1].rpartition("@")[0]


class RemoteLeases:
    """The remote leases this core registered, by owner."""

    def __init__(self, accessor: ModelAccessor, clock: Callable[[], float] = time.time):
        self.accessor = accessor
        self.clock = clock
        self._leases: dict[str, RemoteLease] = {}
        self._lock = threading.Lock()

    def register(self, user: User, client: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body must be a JSON object: name, ttl, shares_work")
        unknown = set(body) - {"name", "ttl", "shares_work", "owner"}
        if unknown:
            key = sorted(unknown)[0]
            raise ApiError(
                400, f"unknown key {key!r}; expected name, ttl, shares_work, owner", field=key
            )
        owner = body.get("owner", "")
        if not isinstance(owner, str) or (owner and not _OWNER.match(owner)):
            raise ApiError(400, "owner: expected the owner this core gave earlier", field="owner")
        name, ttl = body.get("name", ""), body.get("ttl", 60.0)
        shares = body.get("shares_work", True)
        if not isinstance(name, str) or len(name) > 200:
            raise ApiError(400, "name: expected a string of at most 200 characters", field="name")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0.1 <= ttl <= 3600:
            raise ApiError(400, "ttl: expected 0.1 to 3600 seconds", field="ttl")
        if not isinstance(shares, bool):
            raise ApiError(400, "shares_work: expected true or false", field="shares_work")
        if owner and user_of_owner(owner) != user.name:
            raise ApiError(403, f"lease {owner!r} is not {user.name}'s", field="owner")
        lease = RemoteLease(
            self.accessor,
            client,
            user.name,
            owner,
            ttl=float(ttl),
            shares_work=shares,
            name=name,
            clock=self.clock,
        )
        if owner:
            # The runtime comes back (this core restarted, or its lease lapsed): its row, if
            # still there, is renewed, and its claims stay its own.
            lease._registered = True
            lease.renew()
        else:
            lease.register()
        with self._lock:
            self._forget_lapsed()
            self._leases[lease.owner] = lease
        return {"owner": lease.owner, "ttl": lease.ttl}

    def _forget_lapsed(self) -> None:
        """Drop leases not renewed for ten times their TTL (runtimes that went away without
        ending theirs): their rows have expired and their claims have been taken over; one
        that comes back registers again under its owner."""
        now = self.clock()
        for owner, lease in list(self._leases.items()):
            if now - lease.seen > 10 * lease.ttl:
                del self._leases[owner]

    def get(self, user: User, owner: str) -> RemoteLease:
        with self._lock:
            lease = self._leases.get(owner)
        if lease is None:
            raise ApiError(404, f"no lease {owner!r} on this core; register again", field="owner")
        if lease.user != user.name:
            raise ApiError(403, f"lease {owner!r} is not {user.name}'s", field="owner")
        return lease

    def renew(self, user: User, owner: str) -> dict[str, Any]:
        """Renew (re-registering a lease that lapsed, as a local process does)."""
        lease = self.get(user, owner)
        lease.renew()
        lease.seen = self.clock()
        return {"owner": owner, "ttl": lease.ttl}

    def close(self, user: User, owner: str) -> None:
        lease = self.get(user, owner)
        lease.close()
        with self._lock:
            self._leases.pop(owner, None)

    def reap(self, user: User, owner: str, body: Any) -> dict[str, Any]:
        """Take over the claims of gone processes; this runtime's share of the work."""
        kinds = body.get("kinds", []) if isinstance(body, Mapping) else None
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ApiError(400, "kinds: expected a list of claim kinds", field="kinds")
        lease = self.get(user, owner)
        taken = lease.reap(kinds)
        rank, count = lease.share()
        return {"taken": sum(taken.values()), "rank": rank, "count": count}

    def keys_of(self, raw: Any, field: str = "keys") -> list[ClaimKey]:
        """Claim keys from a body's list of `[model, id]` (each by its root model)."""
        return object_keys(self.accessor, raw, field, to_root=True)

    def claims_of(self, user: User, body: Any) -> Claims:
        """The claims of a body's `owner` (a lease of `user`) and `kind`."""
        if not isinstance(body, Mapping):
            raise ApiError(400, "the body must be a JSON object: owner, kind, keys")
        owner, kind = body.get("owner"), body.get("kind")
        if not isinstance(owner, str):
            raise ApiError(400, "owner: expected the owner of a lease", field="owner")
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise ApiError(400, "kind: expected a claim kind such as 'sync'", field="kind")
        return self.get(user, owner).claims(kind)

    def _names(self, raw: Any) -> list[str]:
        if not isinstance(raw, list) or not raw:
            raise ApiError(400, "work: expected a list of model names", field="work")
        for name in raw:
            if not isinstance(name, str) or not self.accessor.has_model_class(name):
                raise ApiError(400, f"work: no model named {name!r}", field="work")
        return list(raw)

    def claim(self, user: User, body: Any) -> dict[str, Any]:
        """Claim what nobody holds: `keys` (with `pending`, only rows still pending that
        way), or with `work` (model names) everything model policies of those models have
        to handle now (the policy engine's pass, `claim_policy_work`)."""
        claims = self.claims_of(user, body)
        if "work" in body:
            names = self._names(body["work"])
            claimed = self.accessor.claim_policy_work(claims, names)
            return {
                "claimed": [[root, i] for root, ids in sorted(claimed.items()) for i in sorted(ids)]
            }
        keys = self.keys_of(body.get("keys"))
        pending = body.get("pending")
        if pending is not None and pending not in PENDING:
            known = ", ".join(PENDING)
            raise ApiError(400, f"pending: expected one of {known}, or null", field="pending")
        got = claims.claim(keys, where=PENDING[pending] if pending is not None else None)
        return {"claimed": [list(k) for k in sorted(got)]}

    def release(self, user: User, body: Any) -> dict[str, Any]:
        """Release `keys`; with `"all": true`, every claim of this owner and kind but
        `keys` (calls still running)."""
        claims = self.claims_of(user, body)
        keys = self.keys_of(body.get("keys", []))
        every = body.get("all", False)
        if not isinstance(every, bool):
            raise ApiError(400, "all: expected true or false", field="all")
        if every:
            claims.release_all(keep=keys)
        else:
            claims.release(keys)
        return {"released": len(set(keys))}


def held_to_dict(held: HeldClaims) -> dict[str, Any]:
    """What one process holds, as `GET /xosapi/v1/claims` answers (`HeldClaims` as JSON)."""
    return attrs.asdict(held, recurse=True)
