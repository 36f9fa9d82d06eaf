"""A real TCP server on 127.0.0.1 that answers each request as scripted, faults included.

Script answers by request number (1-based, counted from the server's start; ``count`` is
the number so far); unscripted requests are answered ``ok``::

    server.script({1: status(503), 2: accept_then_drop(), 3: pause("accepted")})

The faults: ``status(500)``, ``status(429, retry_after="1")``, ``hang()`` (read the request and
never answer until released), ``reset()`` (close with SO_LINGER 0: the client gets an RST),
``accept_then_drop()`` (take the request as a provider would, then close without answering),
``slow(seconds)`` (answer late, but within the client's timeout). ``pause(phase)`` stops a
request in a phase (``headers``: before the body is read, ``accepted``: taken but not
answered, ``answered``: after the answer) and sets its ``reached`` Event, so that a test can
kill the client exactly there.

The server keeps its own record of what it took (``accepted``): the batch (the Idempotency-Key
header, or Mailgun's ``v:batch-key``) and the recipients (JSON ``recipients`` of the webhook,
or the repeated form field ``to`` of Mailgun). A request carrying an Idempotency-Key that was
taken before is answered as the first one was and not recorded again, as an idempotent
provider does; a request without one (Mailgun) is recorded every time it is taken.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from tests.fakes import mailgun

PHASES = ("headers", "accepted", "answered")
WAIT_LIMIT = 60.0  # seconds: no handler thread outlives a test that forgot to release it


@dataclass(eq=False)
class Action:
    """What the server does with one request; ``reached`` is set when the request gets to it."""

    kind: str
    status: int = 200
    retry_after: str | None = None
    seconds: float = 0.0
    phase: str = ""
    reached: threading.Event = field(default_factory=threading.Event, repr=False)
    release: threading.Event = field(default_factory=threading.Event, repr=False)


def ok() -> Action:
    return Action("ok")


def status(code: int, retry_after: str | None = None) -> Action:
    return Action("status", status=code, retry_after=retry_after)


def hang() -> Action:
    return Action("hang")


def reset() -> Action:
    return Action("reset")


def accept_then_drop() -> Action:
    return Action("accept_then_drop")


def slow(seconds: float) -> Action:
    return Action("slow", seconds=seconds)


def pause(phase: str) -> Action:
    assert phase in PHASES, phase
    return Action("pause", phase=phase)


@dataclass(frozen=True)
class Seen:
    """One request as it arrived (``body`` is empty when it was stopped before the body)."""

    number: int
    at: float  # time.monotonic()
    headers: dict[str, str]  # names lower-cased
    body: bytes
    action: str

    @property
    def batch(self) -> str:
        """The batch key the request carried ("" if stopped before a body that holds it)."""
        key = self.headers.get("idempotency-key")
        return key if key is not None or not self.body else _batch_and_recipients(self.headers, self.body)[0]


@dataclass(frozen=True)
class Accepted:
    """One request the server took, as a provider would have sent it on."""

    number: int
    batch: str
    recipients: tuple[str, ...]


class FaultServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.accepted: list[Accepted] = []
        self._script: dict[int, Action] = {}
        self._scripted: list[Action] = []  # every action ever scripted, all released at the end
        self._answers: dict[str, bytes] = {}  # the first answer to each Idempotency-Key
        self._count = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified with every request seen or taken
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._tcp.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._tcp.server_address[1]}"
        # A short poll interval: shutdown() waits for the loop to look, 0.5 s by default.
        self._thread = threading.Thread(target=self._tcp.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for action in self._scripted:
                action.release.set()
        self._tcp.shutdown()
        self._tcp.server_close()
        self._thread.join()

    def script(self, actions: dict[int, Action]) -> None:
        """Replace the script: ``actions`` by request number; any other request is ``ok``."""
        with self._lock:
            self._script = dict(actions)
            self._scripted += actions.values()

    @property
    def count(self) -> int:
        """Requests that arrived so far."""
        with self._lock:
            return self._count

    def wait_for(self, predicate: Callable[[list[Seen], list[Accepted]], bool], timeout: float) -> bool:
        """Wait until ``predicate(requests, accepted)`` holds (checked as each request arrives)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.requests, self.accepted), timeout)

    def recipients(self) -> list[str]:
        """Every recipient of every request taken, repeats kept."""
        with self._lock:
            return [address for taken in self.accepted for address in taken.recipients]

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client was killed or gave up: nobody to answer
                    server._serve(self.request)

        return Handler

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(WAIT_LIMIT)
        head, rest = _read_head(conn)
        if head is None:
            return
        headers = _headers(head)
        with self._lock:
            self._count += 1
            number = self._count
            action = self._script.get(number) or ok()
        if action.phase == "headers":
            self._note(Seen(number, time.monotonic(), headers, b"", action.kind))
            _stop(action)
            return
        body = _read_body(conn, rest, int(headers.get("content-length", "0")))
        self._note(Seen(number, time.monotonic(), headers, body, action.kind))
        if action.kind == "hang":
            _stop(action)
            return
        if action.kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            action.reached.set()
            return
        if action.kind == "status":
            extra = {"Retry-After": action.retry_after} if action.retry_after is not None else {}
            conn.sendall(_response(action.status, {"message": HTTPStatus(action.status).phrase}, extra))
            action.reached.set()
            return
        if action.kind == "slow":
            action.reached.set()
            action.release.wait(action.seconds)  # the delay is the fault; a test may cut it short
        answer = self._take(number, headers, body)
        if action.kind == "accept_then_drop":
            action.reached.set()
            return  # the connection closes with no answer
        if action.phase == "accepted":
            _stop(action)
            return
        conn.sendall(answer)
        action.reached.set()

    def _note(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)
            self._changed.notify_all()

    def _take(self, number: int, headers: dict[str, str], body: bytes) -> bytes:
        """Record the request as taken (once per Idempotency-Key) and return its answer."""
        key = headers.get("idempotency-key")
        batch, recipients = _batch_and_recipients(headers, body)
        with self._lock:
            if key is not None and key in self._answers:
                return self._answers[key]
            self.accepted.append(Accepted(number, key or batch, recipients))
            self._changed.notify_all()
            answer = _response(200, {"id": f"<{number}@faults.test>", "message": "Queued. Thank you."}, {})
            if key is not None:
                self._answers[key] = answer
            return answer


def _stop(action: Action) -> None:
    """Tell the test this request got here, then keep the connection silent until released."""
    action.reached.set()
    action.release.wait(WAIT_LIMIT)


def _read_head(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_body(conn: socket.socket, body: bytes, length: int) -> bytes:
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


def _batch_and_recipients(headers: dict[str, str], body: bytes) -> tuple[str, tuple[str, ...]]:
    if headers.get("content-type", "").startswith("application/json"):
        payload = json.loads(body)
        return payload["key"], tuple(r["email"] for r in payload["recipients"])
    form = mailgun.form(headers.get("content-type", ""), body)
    batch = next((value for name, value in form if name == "v:batch-key"), "")
    return batch, tuple(value for name, value in form if name == "to")


def _response(code: int, payload: Any, headers: dict[str, str]) -> bytes:
    body = json.dumps(payload).encode()
    lines = [
        f"HTTP/1.1 {code} {HTTPStatus(code).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
