"""A local list of 10,000 subscribers, sent through Mailgun and unsubscribed through ``publisher serve``.

The list goes in through ``publisher subscribers import``, the digest through ``publisher run``
to the fake Mailgun (tests/fakes/mailgun.py), which expands each request into the copies its
readers get. Every copy's unsubscribe link (in the HTML, the text and List-Unsubscribe) is
checked, then followed through a real ``publisher serve`` process over one keep-alive
connection: RFC 8058's one-click POST for all but ten readers, a GET (which must change
nothing) for those ten. The next digest must reach the ten and nobody who left.
"""

from __future__ import annotations

import html
import json
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from publisher import subscribers
from publisher.server import listen
from tests.conftest import Project, child_process, readline_within
from tests.endpoint import Endpoint
from tests.fakes.mailgun import Copy, FakeMailgun
from tests.test_server import TIMEOUT, _free_port

KEY = "mg-key-Zt83Qp0Lx5Vw"
SECRET = "ten-thousand-secret-Rw7Pq2Lk9x"
DOMAIN = "mg.example.org"
BASE = "https://news.example.org/unsubscribe"
HREF = re.compile(r'href="([^"]*)"')
TEXT_LINK = re.compile(re.escape(BASE) + r"\?[^\s<>\"]+")


@pytest.fixture
def mailgun(project: Project, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> FakeMailgun:
    """The project sending to its local list through the fake Mailgun; both secrets in the environment."""
    monkeypatch.setenv("PUBLISHER_MAILER_KEY", KEY)
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)  # also for the `publisher serve` child
    project.configure(
        digest={"recipients": "subscribers"},
        mailer={"provider": "mailgun", "url": endpoint.url, "domain": DOMAIN, "retries": 0, "timeout": 30},
    )
    fake = FakeMailgun(domain=DOMAIN, key=KEY)
    endpoint.handler = fake.handle
    return fake


def import_readers(project: Project, count: int) -> list[str]:
    """``count`` addresses through ``publisher subscribers import``; returns them as stored."""
    addresses = [f"reader{n:05d}@example{n % 7}.org" for n in range(count)]
    path = project.root / "readers.csv"
    path.write_text("email,name\n" + "".join(f"{a},Reader {n}\n" for n, a in enumerate(addresses)), encoding="utf-8")
    result = project.cli("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert f"{count} added" in result.stdout
    return addresses


def tokens(project: Project) -> dict[str, str]:
    """Each subscriber's token, by address (lower-cased)."""
    store = project.open_store()
    try:
        return {s.email.lower(): s.token for s in subscribers.listing(store, include_unsubscribed=True)}
    finally:
        store.close()


def the_link(copy: Copy) -> str:
    """The one unsubscribe link in ``copy``: the same in the HTML, the text and List-Unsubscribe."""
    in_html = {html.unescape(url) for url in HREF.findall(copy.html) if url.startswith(BASE)}
    in_text = set(TEXT_LINK.findall(copy.text))
    header = copy.headers["List-Unsubscribe"]
    assert len(in_html) == 1, (copy.to, in_html)
    assert in_html == in_text == {header.removeprefix("<").removesuffix(">")}, (copy.to, in_html, in_text, header)
    assert copy.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return header[1:-1]


def assert_each_once(mailgun: FakeMailgun, addresses: list[str]) -> dict[str, str]:
    """Every address got exactly one copy; returns each one's link."""
    assert sorted(mailgun.delivered) == sorted(a.lower() for a in addresses)
    links = {}
    for address in addresses:
        [copy] = mailgun.copies(address)
        assert copy.to == address
        links[address.lower()] = the_link(copy)
    return links


@contextmanager
def serving(project: Project, stderr_path: Path) -> Iterator[str]:
    """``publisher serve`` as a process, its stderr in ``stderr_path``: yields its base URL; stopped with SIGTERM."""
    port = _free_port()
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "serve", "--port", str(port)]
    with child_process(command, cwd=project.root, stderr=stderr_path) as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
        assert line.startswith(f"serve: http://127.0.0.1:{port}/"), line + stderr_path.read_text()
        yield f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr_path.read_text()


def test_ten_thousand_readers_get_one_copy_each_and_each_link_unsubscribes(
    project: Project, mailgun: FakeMailgun, endpoint: Endpoint, tmp_path: Path
) -> None:
    started = time.monotonic()
    addresses = import_readers(project, 10_000)
    imported = time.monotonic()

    result = project.cli("run")
    sent = time.monotonic()

    assert result.exit_code == 0, result.output
    assert "10 batches accepted, 10000 recipients" in result.stdout
    assert len(endpoint.requests) == len(mailgun.messages) == 10
    assert [len(message.to) for message in mailgun.messages] == [1000] * 10
    links = assert_each_once(mailgun, addresses)
    assert len(set(links.values())) == 10_000
    held = tokens(project)
    for address, url in links.items():
        query = parse_qs(urlsplit(url).query, strict_parsing=True)
        assert url.startswith(BASE + "?")
        assert query["s"] == [held[address]]
        assert subscribers.check(SECRET.encode(), query["s"][0], query["t"][0])
    checked = time.monotonic()

    # All but ten leave with one click, as their mail client does it; the ten only open their
    # link (as a link scanner would) and stay.
    stayers = {a.lower() for a in addresses[::1000]}
    log = tmp_path / "serve-stderr.log"
    with serving(project, log) as base, httpx.Client(base_url=base, timeout=TIMEOUT) as client:
        for address, url in links.items():
            parts = urlsplit(url)
            target = f"{parts.path}?{parts.query}"
            if address in stayers:
                response = client.get(target)
            else:
                response = client.post(target, data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 200, (url, response.status_code)
    unsubscribed = time.monotonic()
    assert log.read_text().count('"POST /unsubscribe HTTP/1.1" 200') == 9_990

    project.add_article("second.md", "---\ntitle: Second story\n---\nA fresh paragraph for the second digest.\n")
    again = project.cli("run")
    assert again.exit_code == 0, again.output
    [second] = mailgun.messages[10:]
    assert sorted(a.lower() for a in second.to) == sorted(stayers)
    for address in addresses:
        assert len(mailgun.copies(address)) == (2 if address.lower() in stayers else 1), address
    for address in stayers:
        assert the_link(mailgun.copies(address)[1]) == links[address]  # the same link, still working
    print(
        f"\nten thousand: import {imported - started:.1f} s, run {sent - imported:.1f} s, "
        f"links checked {checked - sent:.1f} s, 9,990 POSTs and 10 GETs {unsubscribed - checked:.1f} s"
    )


def test_one_more_than_a_thousand_takes_two_requests(
    project: Project, mailgun: FakeMailgun, endpoint: Endpoint
) -> None:
    addresses = import_readers(project, 1001)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert [len(message.to) for message in mailgun.messages] == [1000, 1]
    assert len(endpoint.requests) == 2
    assert_each_once(mailgun, addresses)


# -- the fake refuses what Mailgun refuses, so that the tests above can fail -------------------------


def _form(count: int) -> list[tuple[str, str]]:
    """A request as the mailer makes it, to ``count`` readers."""
    to = [f"reader{n}@example.org" for n in range(count)]
    variables = {a: {"unsubscribe_url": f"{BASE}?s={n}"} for n, a in enumerate(to)}
    return [
        ("from", "News <news@example.org>"),
        *(("to", a) for a in to),
        ("subject", "Digest"),
        ("text", "Leave: %recipient.unsubscribe_url%"),
        ("h:List-Unsubscribe", "<%recipient.unsubscribe_url%>"),
        ("recipient-variables", json.dumps(variables)),
    ]


def _post(endpoint: Endpoint, fields: list[tuple[str, str]], key: str = KEY) -> httpx.Response:
    return httpx.post(
        f"{endpoint.url}/v3/{DOMAIN}/messages",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=("api", key),
        timeout=TIMEOUT,
    )


REFUSED = {
    "1,001 recipients": (_form(1001), "Too many recipients; max is 1000"),
    "no from": (_form(1)[1:], "from parameter is missing"),
    "no body": ([f for f in _form(1) if f[0] != "text"], "Need at least one of 'text' or 'html' parameters specified"),
    "variables not JSON": (
        [f for f in _form(1) if f[0] != "recipient-variables"] + [("recipient-variables", "{")],
        "recipient-variables parameter is not a valid JSON",
    ),
    "a reader without variables": (
        [f for f in _form(2) if f[0] != "recipient-variables"]
        + [("recipient-variables", json.dumps({"reader0@example.org": {"unsubscribe_url": BASE}}))],
        "fake Mailgun: recipient-variables lacks ['unsubscribe_url'] for reader1@example.org",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_fake_refuses_what_mailgun_refuses(mailgun: FakeMailgun, endpoint: Endpoint, case: str) -> None:
    fields, message = REFUSED[case]
    response = _post(endpoint, fields)
    assert (response.status_code, response.json()) == (400, {"message": message})
    assert mailgun.messages == []
    assert mailgun.delivered == {}


def test_the_fake_refuses_a_wrong_key_and_fills_in_each_readers_link(mailgun: FakeMailgun, endpoint: Endpoint) -> None:
    wrong = _post(endpoint, _form(2), key="not-the-key")
    assert (wrong.status_code, wrong.text) == (401, "Forbidden")

    right = _post(endpoint, _form(2))

    assert right.status_code == 200
    assert right.json() == {"id": mailgun.messages[0].id, "message": "Queued. Thank you."}
    [copy] = mailgun.copies("reader1@example.org")
    assert copy.text == f"Leave: {BASE}?s=1"
    assert copy.headers["List-Unsubscribe"] == f"<{BASE}?s=1>"


def test_the_listening_socket_is_tcp_so_keep_alive_answers_are_not_held_back() -> None:
    """asyncio turns Nagle's algorithm off only for IPPROTO_TCP sockets; with proto 0 each
    keep-alive answer waited ~40 ms for a delayed ACK, and the 10,000 POSTs above took 450 s."""
    with listen("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
