"""A real HTTP server on 127.0.0.1 that records what it is sent and answers as scripted.

Tests of delivery point a provider at ``endpoint.url`` and then read ``endpoint.requests``.
Queue answers with ``endpoint.reply(status, body)``; when the queue is empty, the
``endpoint.handler`` answers if one is set (a fake of a provider's API, which checks each
request as the provider would: see tests/fakes/), else ``200 {"id": "<n>"}``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.path).query, keep_blank_values=True)

    def form(self) -> list[tuple[str, str]]:
        """The fields of an application/x-www-form-urlencoded body, in order, repeats kept."""
        return parse_qsl(self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)


# What a handler returns: status, body (JSON-able, or bytes sent as they are), extra headers.
Answer = tuple[int, Any, dict[str, str]]


@dataclass
class Endpoint:
    requests: list[Request] = field(default_factory=list)
    replies: deque[tuple[int, Any]] = field(default_factory=deque)
    url: str = ""
    handler: Callable[[Request], Answer] | None = None

    def reply(self, status: int, body: Any = None) -> None:
        self.replies.append((status, body))


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            endpoint.requests.append(request)
            headers: dict[str, str] = {}
            if endpoint.replies:
                status, payload = endpoint.replies.popleft()
            elif endpoint.handler is not None:
                status, payload, headers = endpoint.handler(request)
            else:
                status, payload = 200, None
            if payload is None and 200 <= status < 300:
                payload = {"id": f"<{len(endpoint.requests)}@endpoint.test>", "message": "Queued. Thank you."}
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


class Server:
    def __init__(self) -> None:
        self.endpoint = Endpoint()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.endpoint))
        self.endpoint.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Endpoint:
        self.thread.start()
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
