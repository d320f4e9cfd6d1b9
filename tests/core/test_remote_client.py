"""`CoreClient`'s waits and retries, against small HTTP servers on loopback that misbehave
on purpose; the backoff runs on a fake clock (no real waiting)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from xos_runtime.exceptions import ObjectValidationError
from xos_runtime.store.remote import CoreAuthError, CoreClient, CoreUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next of `server.answers` (status, body); the last one
    repeats. Status 0: read the request, close the connection without a word."""

    server: ScriptedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        server = self.server
        server.seen.append(self.command)
        status, body = server.answers[min(len(server.seen) - 1, len(server.answers) - 1)]
        if status == 0:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


class ScriptedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: list[tuple[int, str]]):
        super().__init__(("127.0.0.1", 0), Scripted)
        self.answers = answers
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


Serve = Callable[..., ScriptedServer]


@pytest.fixture()
def serve() -> Iterator[Serve]:
    servers: list[ScriptedServer] = []

    def start(*answers: tuple[int, str]) -> ScriptedServer:
        server = ScriptedServer(list(answers))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client(url: str, clock: FakeClock, retry_for: float = 5.0) -> CoreClient:
    return CoreClient(
        url, username="alice", password="pw", retry_for=retry_for, sleep=clock.sleep, clock=clock
    )


def test_5xx_is_retried_with_growing_pauses_until_it_answers(serve: Serve) -> None:
    server = serve((503, '{"error": "busy"}'), (502, ""), (500, ""), (200, '{"items": []}'))
    clock = FakeClock()
    assert client(server.url, clock).get("/x") == {"items": []}
    assert server.seen == ["GET"] * 4
    assert clock.pauses == [0.1, 0.2, 0.4]


def test_a_post_is_retried_on_503_only(serve: Serve) -> None:
    server = serve((503, '{"error": "busy"}'), (201, '{"id": 1}'))
    clock = FakeClock()
    assert client(server.url, clock).post("/x", {"name": "a"}) == {"id": 1}
    assert server.seen == ["POST", "POST"]

    server = serve((500, '{"error": "internal error: Boom"}'))
    with pytest.raises(Exception, match="internal error: Boom"):
        client(server.url, FakeClock()).post("/x", {"name": "a"})
    assert server.seen == ["POST"]


def test_a_post_whose_answer_was_lost_is_not_sent_twice(serve: Serve) -> None:
    server = serve((0, ""))
    with pytest.raises(CoreUnavailable, match=r"POST /x was sent .* may have been done"):
        client(server.url, FakeClock()).post("/x", {"name": "a"})
    assert server.seen == ["POST"]

    # A POST that may be sent twice says so, and is retried.
    server = serve((0, ""), (500, ""), (200, '{"updated": 1}'))
    assert client(server.url, FakeClock()).post("/x", {}, idempotent=True) == {"updated": 1}
    assert server.seen == ["POST"] * 3

    # What is safe to repeat is repeated, up to `retry_for`.
    server = serve((0, ""))
    clock = FakeClock()
    with pytest.raises(CoreUnavailable, match="did not answer for 5 s"):
        client(server.url, clock).put("/x/1", {"name": "a"})
    assert len(server.seen) > 3 and set(server.seen) == {"PUT"}
    assert clock.now == pytest.approx(5.0)


def test_a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing(serve: Serve) -> None:
    server = serve((0, ""), (404, '{"error": "Site id 1 does not exist"}'))
    client(server.url, FakeClock()).delete("/x/1")
    assert server.seen == ["DELETE", "DELETE"]


def test_refusals_are_the_store_exceptions(serve: Serve) -> None:
    server = serve((401, '{"error": "wrong user name or password"}'))
    with pytest.raises(CoreAuthError, match=r"refused user 'alice': wrong user name"):
        client(server.url, FakeClock()).get("/x")
    server = serve((400, '{"error": "Site.quota: expected an integer", "field": "quota"}'))
    with pytest.raises(ObjectValidationError, match=r"Site\.quota"):
        client(server.url, FakeClock()).put("/x/1", {"quota": "x"})
    assert server.seen == ["PUT"]


def test_nothing_listening_is_waited_for_then_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    with pytest.raises(CoreUnavailable, match=rf"127.0.0.1:{port} did not answer for 1 s"):
        client(f"http://127.0.0.1:{port}", clock, retry_for=1.0).post("/x", {})
    # The last pause ends at the deadline.
    assert clock.pauses == pytest.approx([0.1, 0.2, 0.4, 0.3])


def test_credentials_may_be_in_the_url() -> None:
    c = CoreClient("https://vsg:p%40ss%3Aw@[::1]:8443/", sleep=FakeClock().sleep)
    assert (c.base, c.username, c.session.auth) == ("https://[::1]:8443", "vsg", ("vsg", "p@ss:w"))
    c = CoreClient("http://vsg:x@h:1", username="alice", password="pw")
    assert (c.base, c.session.auth) == ("http://h:1", ("alice", "pw"))
