"""WebSub publish pings, against real HTTP hubs on 127.0.0.1 that each test starts.

The ``hub`` fixture records every request and answers as scripted (status, body, headers: a
real hub's ``Retry-After`` included). Waits between attempts go to a recorder instead of
``time.sleep``, so the tests check what the backoff asked for without waiting for it.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from publisher import __version__
from publisher.http import RETRY_AFTER_CAP
from publisher.websub import PingResult, notify
from tests.endpoint import Request

FEED = "https://news.example.org/feeds/atom.xml"
JSON_FEED = "https://news.example.org/feeds/feed.json"
# A topic whose own query must survive form encoding as one hub.url value.
TAG_FEED = "https://news.example.org/feeds/tags/atom.xml?tag=war+%26+peace&page=2"
FORM = "application/x-www-form-urlencoded"
TOKEN = "hubT0k3nQ9zX"  # distinctive: its presence anywhere in a result is a leak
PASSWORD = "hubPa55wordR7"


@dataclass
class Hub:
    requests: list[Request] = field(default_factory=list)
    replies: deque[tuple[int, bytes, dict[str, str]]] = field(default_factory=deque)
    url: str = ""  # http://127.0.0.1:<port>/hub

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Queue one answer; with the queue empty the hub answers 204, as most hubs do."""
        self.replies.append((status, body, headers or {}))


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hub.requests.append(Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, payload, headers = hub.replies.popleft() if hub.replies else (204, b"", {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if status != 204:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def hub() -> Iterator[Hub]:
    running = Hub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(running))
    running.url = f"http://127.0.0.1:{httpd.server_port}/hub"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield running
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A hub URL whose connections the kernel accepts (backlog) and nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hub"


@pytest.fixture
def waits() -> list[float]:
    """Pass ``sleep=waits.append``: every wait the retry logic asks for, in seconds, none waited."""
    return []


def assert_one_line(result: PingResult) -> None:
    assert result.message.startswith("websub: ")
    assert "\n" not in result.message and "\r" not in result.message


def test_one_hub_two_topics_gets_one_publish_post_per_topic(hub: Hub, waits: list[float]) -> None:
    hub.reply(204)
    hub.reply(202)

    results = notify([hub.url], [FEED, TAG_FEED], sleep=waits.append)

    assert [r.form() for r in hub.requests] == [
        [("hub.mode", "publish"), ("hub.url", FEED)],
        [("hub.mode", "publish"), ("hub.url", TAG_FEED)],
    ]
    for request in hub.requests:
        assert request.method == "POST" and request.path == "/hub"
        assert request.headers["content-type"].split(";")[0].strip() == FORM
        assert request.headers["user-agent"] == f"publisher/{__version__}"
    assert results == [
        PingResult(hub=hub.url, topic=FEED, ok=True, message=f"websub: {hub.url} accepted {FEED}"),
        PingResult(hub=hub.url, topic=TAG_FEED, ok=True, message=f"websub: {hub.url} accepted {TAG_FEED}"),
    ]
    assert waits == []


def test_repeated_hubs_and_topics_are_notified_once(hub: Hub, waits: list[float]) -> None:
    results = notify([hub.url, hub.url], [FEED, FEED, JSON_FEED], sleep=waits.append)

    assert [dict(r.form())["hub.url"] for r in hub.requests] == [FEED, JSON_FEED]
    assert [(r.topic, r.ok) for r in results] == [(FEED, True), (JSON_FEED, True)]


def test_no_hubs_means_no_requests_and_no_results(hub: Hub) -> None:
    assert notify([], [FEED]) == []
    assert notify([hub.url], []) == []
    assert hub.requests == []


@pytest.fixture
def refused_hub(refused_url: str) -> str:
    return refused_url + "/hub"


def test_an_unreachable_hub_does_not_stop_the_next_one(hub: Hub, refused_hub: str, waits: list[float]) -> None:
    results = notify([refused_hub, hub.url], [FEED, JSON_FEED], retries=1, sleep=waits.append)

    assert [(r.hub, r.topic, r.ok) for r in results] == [
        (refused_hub, FEED, False),
        (refused_hub, JSON_FEED, False),
        (hub.url, FEED, True),
        (hub.url, JSON_FEED, True),
    ]
    for bad in results[:2]:
        assert_one_line(bad)
        assert bad.message.startswith(f"websub: {refused_hub} not notified of {bad.topic}: cannot connect (")
        assert bad.message.endswith("(gave up after 2 attempts)")
    assert [dict(r.form())["hub.url"] for r in hub.requests] == [FEED, JSON_FEED]
    assert len(waits) == 2  # one retry per topic on the refused hub, none on the good one


def test_503_then_204_is_retried_after_a_short_backoff(hub: Hub, waits: list[float]) -> None:
    hub.reply(503, b"hub is restarting")
    hub.reply(204)

    [result] = notify([hub.url], [FEED], sleep=waits.append)

    assert result.ok, result.message
    assert result.message == f"websub: {hub.url} accepted {FEED}"
    assert [r.form() for r in hub.requests] == [[("hub.mode", "publish"), ("hub.url", FEED)]] * 2
    [wait] = waits
    assert 0.5 <= wait <= 1.5  # first step of the exponential backoff: 0.5 s plus up to 1 s of jitter


def test_429_with_retry_after_waits_as_long_as_the_hub_asked(hub: Hub, waits: list[float]) -> None:
    hub.reply(429, b"slow down", {"Retry-After": "1"})
    hub.reply(202)

    [result] = notify([hub.url], [FEED], sleep=waits.append)

    assert result.ok, result.message
    assert len(hub.requests) == 2
    assert waits == [1.0]


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("0", 0.0, 0.0),
        ("7", 7.0, 7.0),
        ("86400", RETRY_AFTER_CAP, RETRY_AFTER_CAP),  # a hub asking for a day is not waited for
        ("HTTP-DATE+20", 17.0, 20.0),  # an HTTP date 20 s from now
        ("HTTP-DATE-60", 0.0, 0.0),  # a date already past: retry at once
        ("soon", 0.5, 1.5),  # unreadable: ordinary backoff
    ],
)
def test_retry_after_forms_and_cap(hub: Hub, waits: list[float], retry_after: str, low: float, high: float) -> None:
    if retry_after.startswith("HTTP-DATE"):
        when = datetime.now(UTC) + timedelta(seconds=int(retry_after.removeprefix("HTTP-DATE")))
        retry_after = format_datetime(when, usegmt=True)
    hub.reply(503, b"busy", {"Retry-After": retry_after})

    [result] = notify([hub.url], [FEED], sleep=waits.append)

    assert result.ok, result.message
    [wait] = waits
    assert low <= wait <= high


def test_a_400_is_permanent_and_reported_with_the_hubs_words(hub: Hub, waits: list[float]) -> None:
    hub.reply(400, b"hub.url is not a topic\nthis hub serves")
    hub.reply(204)

    results = notify([hub.url], [FEED, JSON_FEED], retries=2, sleep=waits.append)

    bad, good = results
    assert not bad.ok
    assert_one_line(bad)
    assert bad.message == (
        f"websub: {hub.url} not notified of {FEED}: HTTP 400: hub.url is not a topic this hub serves"
        " (permanent, not retried)"
    )
    assert good.ok and good.topic == JSON_FEED  # the failing topic did not stop the next one
    assert len(hub.requests) == 2 and waits == []


def test_a_hub_that_keeps_failing_is_given_up_after_the_retries(hub: Hub, waits: list[float]) -> None:
    for _ in range(4):
        hub.reply(502, b"bad gateway")

    [result] = notify([hub.url], [FEED], retries=2, sleep=waits.append)

    assert not result.ok
    assert result.message == (
        f"websub: {hub.url} not notified of {FEED}: HTTP 502: bad gateway (gave up after 3 attempts)"
    )
    assert len(hub.requests) == 3 and len(waits) == 2
    assert waits[1] >= 1.0  # the second wait grows: 1 s plus jitter


def test_a_hub_that_never_answers_times_out_and_is_retried(silent_url: str, waits: list[float]) -> None:
    [result] = notify([silent_url], [FEED], timeout=0.2, retries=1, sleep=waits.append)

    assert not result.ok
    assert result.message == (
        f"websub: {silent_url} not notified of {FEED}: no answer within 0.2s (gave up after 2 attempts)"
    )
    assert len(waits) == 1


def test_a_hub_url_httpx_cannot_use_is_reported_not_raised(hub: Hub, waits: list[float]) -> None:
    results = notify(["hub.example.org/websub", hub.url], [FEED], sleep=waits.append)

    assert [r.ok for r in results] == [False, True]
    assert_one_line(results[0])
    assert "cannot send (" in results[0].message and results[0].message.endswith("(permanent, not retried)")
    assert waits == [] and len(hub.requests) == 1


def test_credentials_and_tokens_in_a_hub_url_never_appear_in_results(hub: Hub, waits: list[float]) -> None:
    secret_url = hub.url.replace("://", f"://pinger:{PASSWORD}@") + f"?token={TOKEN}"
    basic = base64.b64encode(f"pinger:{PASSWORD}".encode()).decode()
    # A careless hub echoing everything it was sent back in its error.
    hub.reply(403, f"token {TOKEN} refused for pinger:{PASSWORD} (Authorization: Basic {basic})".encode())

    [result] = notify([secret_url], [FEED], sleep=waits.append)

    # The hub got the whole URL and the credentials ...
    [request] = hub.requests
    assert request.path == f"/hub?token={TOKEN}"
    assert request.headers["authorization"] == f"Basic {basic}"
    # ... and nothing of them came back out.
    assert not result.ok
    assert result.hub == hub.url
    assert result.message.startswith(f"websub: {hub.url} not notified of {FEED}: HTTP 403: token [redacted] refused")
    for text in (result.message, result.hub, repr(result)):
        assert TOKEN not in text and PASSWORD not in text and basic not in text


def test_credentials_in_an_unreachable_hub_url_are_not_printed(refused_hub: str, waits: list[float]) -> None:
    secret_url = refused_hub.replace("://", f"://pinger:{PASSWORD}@") + f"?token={TOKEN}"

    [result] = notify([secret_url], [FEED], retries=0, sleep=waits.append)

    assert not result.ok
    assert result.message.startswith(f"websub: {refused_hub} not notified of {FEED}: cannot connect (")
    for text in (result.message, repr(result)):
        assert TOKEN not in text and PASSWORD not in text
