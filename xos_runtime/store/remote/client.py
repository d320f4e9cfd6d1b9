"""`CoreClient`: the HTTP calls of a remote accessor to an XOS core (`xos-runtime core serve`).

One pooled `requests.Session` per client, with connect and read timeouts, basic auth, and TLS
checked against `ca_file` (or the system's authorities). A core that does not answer
(connection refused, a timeout, a 5xx) is waited for: the request is retried with
exponential backoff for up to `retry_for` seconds, said once in the log when the wait
starts and once when the core answers again; then `CoreUnavailable`.

Which requests are retried is a matter of safety, not of luck. GET, PUT (it sets fields to
values) and DELETE (a retry that finds the object gone counts as done) are retried on every
failure. A POST creates an object: it is retried only when the core surely did not act on
it, that is when the connection was never made (refused, connect timeout) or when the core
answered 503 (its store was busy or away, nothing written). A POST whose response was lost
after it was sent is not repeated (it might create the object twice): `CoreUnavailable`
says the create may have happened. POSTs that may be sent twice (outcome writes by id,
claims) say so (`idempotent=True`) and are retried as a PUT is.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import requests
from loguru import logger
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError

from xos_runtime.exceptions import DoesNotExist, ObjectValidationError, StoreAway, StoreError
from xos_runtime.store import wire

__all__ = [
    "CoreAuthError",
    "CoreClient",
    "CoreConflict",
    "CoreUnavailable",
    "split_credentials",
]

#: Seconds to open a connection, and to wait for a response once the request is sent.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
#: The first pause between two tries, and the longest one (seconds).
FIRST_PAUSE = 0.1
LONGEST_PAUSE = 2.0


class CoreAuthError(StoreError):
    """The core refused the credentials (401), or the user's role (403 at start-up)."""


class CoreConflict(StoreError):
    """The core refused a change that conflicts with the object (409); `field` names why."""

    def __init__(self, message: str, field: str | None):
        super().__init__(message)
        self.field = field


class CoreUnavailable(StoreAway):
    """The core did not answer within `retry_for` seconds, or a create's outcome is unknown."""


def _not_sent(exc: requests.RequestException) -> bool:
    """Whether the request surely never reached the core (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.ConnectionError):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _reason(exc: requests.RequestException) -> str:
    """A short why of a failed request (urllib3's text repeats the whole URL)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    marker = "Failed to establish a new connection: "
    if marker in text:
        return text.split(marker, 1)[1].rstrip("')\"")
    if isinstance(reason, ProtocolError) and len(reason.args) > 1:  # ('Connection aborted.', e)
        return str(reason.args[-1])
    return text


def _body(response: requests.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _message(response: requests.Response) -> str:
    error = _body(response).get("error")
    if isinstance(error, str):
        return error
    return f"HTTP {response.status_code} {response.reason}".strip()


def split_credentials(endpoint: str) -> tuple[str, str | None, str | None]:
    """`http://user:pw@host:port/` as `(http://host:port, user, pw)`; the base URL has no
    trailing slash."""
    parts = urlsplit(endpoint)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return base, user, password


class CoreClient:
    """Requests to one core, as one user, with the waits and retries said above.

    `sleep` and `clock` are injectable (tests of the backoff take no real time).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        retry_for: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        base, url_user, url_password = split_credentials(endpoint)
        self.base = base
        self.username = username if username is not None else url_user
        password = password if password is not None else url_password
        self.ca_file = ca_file
        self.retry_for = retry_for
        self.timeout = (connect_timeout, read_timeout)
        self.sleep = sleep
        self.clock = clock
        self.session = requests.Session()
        if self.username is not None:
            self.session.auth = (self.username, password or "")
        # The environment (proxies, REQUESTS_CA_BUNDLE) is read once, here, not by requests
        # on every request (an eighth of a runtime's time over a core went there).
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(base))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: str | bool = ca_file if ca_file is not None else (bundle or True)
        self.session.headers["Accept"] = "application/json"
        #: Whether a wait for the core is going on (said once in the log).
        self._waiting = False

    def sibling(
        self,
        *,
        retry_for: float | None = None,
        read_timeout: float | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> CoreClient:
        """A client of the same core, as the same user with the same trust, with a session
        of its own: for a thread that calls the core on its own (the change feed's long
        poll), with its own retries, read timeout and pauses."""
        connect_timeout, own_read = self.timeout
        other = CoreClient(
            self.base,
            ca_file=self.ca_file,
            retry_for=self.retry_for if retry_for is None else retry_for,
            connect_timeout=connect_timeout,
            read_timeout=own_read if read_timeout is None else read_timeout,
            sleep=self.sleep if sleep is None else sleep,
            clock=self.clock,
        )
        other.username = self.username
        other.session.auth = self.session.auth
        return other

    @property
    def waiting(self) -> bool:
        """Whether the last request is waiting for the core (it did not answer)."""
        return self._waiting

    def close(self) -> None:
        self.session.close()

    # -- requests --------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return wire.loads(self.request("GET", path, params=params).content)

    def post(
        self,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = False,
    ) -> Any:
        """A POST; `idempotent` for those that may be sent twice (outcome writes, claims),
        which are then retried as a PUT is."""
        response = self.request("POST", path, json=body, headers=headers, idempotent=idempotent)
        return wire.loads(response.content)

    def put(self, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Any:
        return wire.loads(self.request("PUT", path, json=body, headers=headers).content)

    def delete(self, path: str) -> requests.Response:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """One call, retried while the core does not answer; a refusal raises the store's
        exception of it (`ObjectValidationError` for 400, `DoesNotExist` for 404, ...).
        `idempotent` (default: every method but POST) says whether the call may be sent
        again after a failure that may have come after the core acted on it."""
        url = requote_uri(self.base + path)
        body = None if json is None else wire.dumps(json)
        if idempotent is None:
            idempotent = method != "POST"
        started: float | None = None
        pause = FIRST_PAUSE
        tries = 0
        while True:
            tries += 1
            why: str
            try:
                response = self.session.send(
                    self._prepared(method, url, params, body, headers),
                    timeout=self.timeout,
                    verify=self.verify,
                    proxies=self.session.proxies,
                )
            except requests.exceptions.SSLError as exc:
                trust = self.ca_file or "the system's certificate authorities"
                found = re.search(r"\[SSL: [A-Z_]+\] ([^(']+)", str(exc))
                why = found.group(1).strip() if found else str(exc)
                raise StoreError(
                    f"the core at {self.base}: TLS failed against {trust}: {why}"
                ) from None
            except requests.RequestException as exc:
                if not idempotent and not _not_sent(exc):
                    raise CoreUnavailable(
                        f"the core at {self.base} went away after a {method} {path} was sent "
                        f"({_reason(exc)}); it may have been done: look before sending it again"
                    ) from None
                why = _reason(exc)
            else:
                status = response.status_code
                retry = status >= 500 if idempotent else status == 503
                if not retry:
                    self._answered()
                    if method == "DELETE" and status == 404 and tries > 1:
                        return response  # a lost response of a DELETE that was done
                    return self._checked(response)
                why = f"HTTP {status}: {_message(response)}"
            now = self.clock()
            if started is None:
                started = now
            if now - started >= self.retry_for:
                raise CoreUnavailable(
                    f"the core at {self.base} did not answer for {self.retry_for:g} s "
                    f"({method} {path}: {why})"
                )
            if not self._waiting:
                self._waiting = True
                logger.warning(
                    "the core at {} does not answer ({}); waiting for it, up to {:g} s",
                    self.base,
                    why,
                    self.retry_for,
                )
            self.sleep(min(pause, max(0.0, started + self.retry_for - now)))
            pause = min(pause * 2, LONGEST_PAUSE)

    def _prepared(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> requests.PreparedRequest:
        """The request as `Session.request` would prepare it for the core (the session's
        headers and basic auth, a JSON body, the query), built directly: requests' general
        preparation (cookies, hooks, the merging of settings, URL parsing) was a third of
        the time a runtime over a core spent sending a request."""
        prepared = requests.PreparedRequest()
        prepared.method = method
        query = {k: v for k, v in (params or {}).items() if v is not None}
        prepared.url = f"{url}?{urlencode(query, doseq=True)}" if query else url
        sent: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in self.session.headers.items():
            sent[name] = value if isinstance(value, str) else value.decode("latin-1")
        if body is not None:
            sent["Content-Type"] = "application/json"
        if headers:
            sent.update(headers)
        prepared.headers = sent
        prepared.body = body
        prepared.prepare_content_length(body)
        if self.session.auth is not None:
            prepared.prepare_auth(self.session.auth)
        return prepared

    def _answered(self) -> None:
        if self._waiting:
            self._waiting = False
            logger.info("the core at {} answers again", self.base)

    def _checked(self, response: requests.Response) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        message = _message(response)
        who = f"user {self.username!r}" if self.username is not None else "no user"
        if status == 401:
            raise CoreAuthError(f"the core at {self.base} refused {who}: {message}")
        if status == 429:
            raise CoreAuthError(f"the core at {self.base} refused {who} for now: {message}")
        if status == 403:
            raise CoreAuthError(f"the core at {self.base} forbade it to {who}: {message}")
        if status == 404:
            raise DoesNotExist(message)
        if status in (400, 413):
            raise ObjectValidationError(message)
        if status == 409:
            field = _body(response).get("field")
            raise CoreConflict(message, field if isinstance(field, str) else None)
        raise StoreError(f"the core at {self.base}: {message}")
