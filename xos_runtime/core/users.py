"""The core's users and their bearer tokens, in the store beside the models.

Passwords are kept as argon2id hashes (argon2-cffi), tokens as SHA-256 digests: a token is
32 random bytes, so a fast digest suffices and lets a request find its user in one lookup.
Checking an argon2 hash costs tens of milliseconds by design; a client that sends its basic
credentials with every request pays it once: a verified (user, password digest, hash) is
remembered for as long as the stored hash stays the same.

The tables are created when missing (`core user add` on a store that was never opened),
in their own metadata: the model tables' schema digest does not cover them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Literal

import attrs
import sqlalchemy as sa

from xos_runtime.exceptions import StoreError
from xos_runtime.store import SqlStore

__all__ = ["ROLES", "Role", "User", "Users"]

Role = Literal["synchronizer", "user"]
#: The two roles of XOS's API: synchronizers write feedback, claim work and load models.
ROLES: tuple[Role, ...] = ("synchronizer", "user")

USERS_TABLE = "xos_runtime_users"
TOKENS_TABLE = "xos_runtime_tokens"
#: Seconds a user's row is trusted once read (a new password or a removed user takes at
#: most this long to count; passwords verified once are not hashed again meanwhile).
ROW_TTL = 1.0

#: What every token starts with, so that one is recognised in a config or a log.
TOKEN_PREFIX = "xrt_"

_metadata = sa.MetaData()
_users = sa.Table(
    USERS_TABLE,
    _metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
)
_tokens = sa.Table(
    TOKENS_TABLE,
    _metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
)


@attrs.frozen
class User:
    """Who a request was authenticated as."""

    name: str
    role: Role

    @property
    def synchronizer(self) -> bool:
        return self.role == "synchronizer"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Users:
    """The users of one store: add them, make tokens, and check credentials."""

    def __init__(self, store: SqlStore, clock: Callable[[], float] = time.monotonic):
        from argon2 import PasswordHasher  # the commands that check passwords pay for it

        self.store = store
        self.clock = clock
        self._hasher = PasswordHasher()
        self._verified: dict[tuple[str, str], str] = {}
        #: Users' rows as last read, with when (`ROW_TTL`).
        self._rows: dict[str, tuple[float, tuple[str, str] | None]] = {}
        self._lock = threading.Lock()
        self._decoy_hash: str | None = None
        with store.write() as conn:
            _metadata.create_all(conn, checkfirst=True)

    def add(self, name: str, password: str, role: Role = "user") -> None:
        """Add the user `name`, or give an existing one a new password and role."""
        if not name or len(name) > 200 or ":" in name:
            raise StoreError(f"user name {name!r}: 1 to 200 characters, no ':'")
        if not password:
            raise StoreError(f"user {name}: the password is empty")
        if role not in ROLES:
            raise StoreError(f"user {name}: unknown role {role!r}")
        hashed = self._hasher.hash(password)
        with self._lock:
            self._rows.pop(name, None)
        with self.store.write() as conn:
            conn.execute(sa.delete(_users).where(_users.c.name == name))
            conn.execute(sa.insert(_users).values(name=name, password_hash=hashed, role=role))

    def create_token(self, name: str) -> str:
        """A new bearer token of user `name` (shown once: only its digest is kept)."""
        if self._row(name) is None:
            raise StoreError(f"no user named {name!r}: add it with `xos-runtime core user add`")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.write() as conn:
            conn.execute(sa.insert(_tokens).values(digest=_digest(token), name=name))
        return token

    def _row(self, name: str) -> tuple[str, str] | None:
        """The user's password hash and role, read again once `ROW_TTL` has passed."""
        now = self.clock()
        with self._lock:
            known = self._rows.get(name)
        if known is not None and now - known[0] < ROW_TTL:
            return known[1]
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(_users.c.password_hash, _users.c.role).where(_users.c.name == name)
            ).first()
        found = (str(row[0]), str(row[1])) if row is not None else None
        with self._lock:
            if len(self._rows) > 10_000:
                self._rows.clear()
            self._rows[name] = (now, found)
        return found

    def known_at_once(self, name: str, password: str) -> bool:
        """Whether checking these credentials needs neither the store nor a hash: the
        user's row was read less than `ROW_TTL` ago and this password was verified against
        it (a request's authentication then needs no thread of its own)."""
        with self._lock:
            known = self._rows.get(name)
            if known is None or known[1] is None or self.clock() - known[0] >= ROW_TTL:
                return False
            verified = self._verified.get((name, _digest(password)))
        return verified is not None and hmac.compare_digest(verified, known[1][0])

    def check_password(self, name: str, password: str) -> User | None:
        """The user whose name and password these are, or None."""
        from argon2.exceptions import InvalidHashError, VerificationError

        row = self._row(name)
        if row is None:
            # as long as for a known name: the answer's time must not tell names apart
            with contextlib.suppress(VerificationError, InvalidHashError):
                self._hasher.verify(self._decoy(), password)
            return None
        hashed, role = row
        key = (name, _digest(password))
        with self._lock:
            known = self._verified.get(key)
        if known is None or not hmac.compare_digest(known, hashed):
            try:
                self._hasher.verify(hashed, password)
            except (VerificationError, InvalidHashError):
                return None
            with self._lock:
                self._verified[key] = hashed
        return User(name, role)  # type: ignore[arg-type]

    def _decoy(self) -> str:
        """A hash of no one's password, checked for names that do not exist."""
        if self._decoy_hash is None:
            self._decoy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._decoy_hash

    def check_token(self, token: str) -> User | None:
        """The user this bearer token belongs to, or None."""
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(_users.c.name, _users.c.role)
                .join(_tokens, _tokens.c.name == _users.c.name)
                .where(_tokens.c.digest == _digest(token))
            ).first()
        return User(str(row[0]), row[1]) if row is not None else None

    def count(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_users)).scalar_one())
