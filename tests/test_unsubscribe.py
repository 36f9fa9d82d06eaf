"""Unsubscribing through ``publisher serve``: the one-click POST of RFC 8058 and the confirmation page.

The app runs on a real uvicorn server on 127.0.0.1 (``Running``, as in test_server.py); the
last tests run ``python -m publisher serve`` as a process. Links are built the way a digest
builds them, or read from the digest the outbox wrote. After each request the test reads the
subscriber list back from the store: a GET, a bad link or a failure must change nothing.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
import signal
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import text

from publisher import subscribers
from publisher.subscribers import Subscriber
from tests.conftest import NOW, Project, child_process, readline_within
from tests.test_server import TIMEOUT, Running, _free_port

SECRET = "unsubscribe-secret-9Qx4Lm2Vz7"
OTHER_SECRET = "another-secret-Kd83Hs02Pq5w"
ADDRESSES = ["ada@example.org", "Grace.Hopper@Example.net", "linus@example.com"]
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
BOUNDARY = "----publisher-test-boundary-7MA4YWxk"
# What a mail provider that uses multipart/form-data sends for RFC 8058 one-click.
MULTIPART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--{BOUNDARY}--\r\n'
).encode()


@pytest.fixture
def listed(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project sending to its own list of ADDRESSES, the link secret in the environment."""
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    project.configure(digest={"recipients": "subscribers"})
    store = project.open_store()
    try:
        subscribers.add(store, [(subscribers.normalize(a), None) for a in ADDRESSES], NOW, resubscribe=False)
    finally:
        store.close()
    return project


@pytest.fixture
def server(listed: Project) -> Iterator[Running]:
    with Running(listed.config()) as running:
        yield running


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, follow_redirects=False) as http:
        yield http


def everyone(project: Project) -> dict[str, Subscriber]:
    store = project.open_store()
    try:
        return {s.email: s for s in subscribers.listing(store, include_unsubscribed=True)}
    finally:
        store.close()


def states(project: Project) -> dict[str, str]:
    return {address: s.state for address, s in everyone(project).items()}


ALL_ACTIVE = {"ada@example.org": "active", "Grace.Hopper@example.net": "active", "linus@example.com": "active"}


def link(project: Project, address: str, secret: str = SECRET) -> str:
    """The path and query of ``address``'s personal link, as a digest carries it."""
    token = everyone(project)[address].token
    url = subscribers.unsubscribe_url(project.config().digest.unsubscribe_url, secret.encode(), token)
    return _relative(url)


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def assert_private_page(response: httpx.Response) -> None:
    """Not cached, no Referer, no cookie, no redirect, nothing loaded or framed."""
    assert not response.is_redirect and "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The page's own stylesheet, by its hash, and nothing else.
    style = re.search(r"<style>(.*?)</style>", response.text, flags=re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert response.headers["content-security-policy"] == (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"


class Forms(HTMLParser):
    """The page's forms: (method, action, hidden fields, button texts), as a browser reads them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, str], list[str]]] = []
        self._in_button = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("method", "get").lower(), values.get("action", ""), {}, []))
        elif tag == "input" and values.get("type") == "hidden" and self.forms:
            self.forms[-1][2][values["name"]] = values.get("value", "")
        elif tag == "button" and self.forms:
            self._in_button = True
            self.forms[-1][3].append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_button = self._in_button and tag != "button"

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.forms[-1][3][-1] += data.strip()


# -- the confirmation page ----------------------------------------------------------------------


def test_get_asks_for_confirmation_with_a_form_and_changes_nothing(listed: Project, client: httpx.Client) -> None:
    target = link(listed, "ada@example.org")

    response = client.get(target)

    assert response.status_code == 200
    assert_private_page(response)
    assert "Example News" in response.text
    assert "a\u2026@example.org" in response.text
    assert "ada@example.org" not in response.text  # masked: the page may sit in a scanner's cache
    [(method, action, hidden, buttons)] = Forms(response.text).forms
    assert method == "post"
    assert urljoin(str(response.url), action) == str(response.url)  # back to the same URL, s and t kept
    assert hidden == ONE_CLICK
    assert buttons == ["Unsubscribe"]
    assert client.head(target).status_code == 200
    assert states(listed) == ALL_ACTIVE


def test_the_page_escapes_the_site_title(listed: Project) -> None:
    config = listed.configure(site={"title": 'Example <script>alert("x")</script> & Co'})
    with Running(config) as server:
        response = httpx.get(server.url + link(listed, "ada@example.org"), timeout=TIMEOUT)
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "Example &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in response.text


def test_the_confirmation_form_unsubscribes_and_the_page_then_says_so(listed: Project, client: httpx.Client) -> None:
    page = client.get(link(listed, "Grace.Hopper@example.net"))
    [(_, action, hidden, _)] = Forms(page.text).forms

    done = client.post(urljoin(str(page.url), action), data=hidden)  # what the browser sends

    assert done.status_code == 200
    assert_private_page(done)
    assert "G\u2026@example.net is unsubscribed" in done.text
    assert states(listed) == {**ALL_ACTIVE, "Grace.Hopper@example.net": "unsubscribed"}
    again = client.get(link(listed, "Grace.Hopper@example.net"))
    assert again.status_code == 200
    assert "Already unsubscribed" in again.text
    assert Forms(again.text).forms == []


# -- one-click (RFC 8058) -----------------------------------------------------------------------

ENCODINGS = {
    "urlencoded": {"data": ONE_CLICK},
    "multipart": {"content": MULTIPART, "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}},
}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_one_click_post_unsubscribes_in_either_form_encoding(
    listed: Project, client: httpx.Client, encoding: str
) -> None:
    response = client.post(link(listed, "ada@example.org"), **ENCODINGS[encoding])  # type: ignore[arg-type]

    assert response.status_code == 200
    assert_private_page(response)
    assert "a\u2026@example.org is unsubscribed from Example News" in response.text
    assert states(listed) == {**ALL_ACTIVE, "ada@example.org": "unsubscribed"}
    assert everyone(listed)["ada@example.org"].unsubscribed_at is not None


def test_a_second_post_is_200_and_changes_nothing_more(listed: Project, client: httpx.Client) -> None:
    target = link(listed, "linus@example.com")
    assert client.post(target, data=ONE_CLICK).status_code == 200
    first = everyone(listed)["linus@example.com"]

    again = client.post(target, data=ONE_CLICK)

    assert again.status_code == 200
    assert_private_page(again)
    assert everyone(listed)["linus@example.com"] == first  # same state, same unsubscribed_at
    assert states(listed) == {**ALL_ACTIVE, "linus@example.com": "unsubscribed"}


# -- links that do not work ---------------------------------------------------------------------


def _bad_queries(project: Project) -> dict[str, str]:
    people = everyone(project)
    token, other = people["ada@example.org"].token, people["linus@example.com"].token
    sig = subscribers.signature(SECRET.encode(), token)
    stranger = "not-a-subscriber-token-00000"
    return {
        "another secret": urlencode({"s": token, "t": subscribers.signature(OTHER_SECRET.encode(), token)}),
        "truncated signature": urlencode({"s": token, "t": sig[:-1]}),
        "signature one character off": urlencode({"s": token, "t": sig[:-1] + ("A" if sig[-1] != "A" else "B")}),
        "another reader's signature": urlencode({"s": token, "t": subscribers.signature(SECRET.encode(), other)}),
        "non-ASCII signature": urlencode({"s": token, "t": sig[:-1] + "\u00e9"}),
        "empty signature": urlencode({"s": token, "t": ""}),
        "no signature": urlencode({"s": token}),
        "no token": urlencode({"t": sig}),
        "no query": "",
        "token twice": urlencode([("s", token), ("s", token), ("t", sig)]),
        "signed but unknown token": urlencode({"s": stranger, "t": subscribers.signature(SECRET.encode(), stranger)}),
    }


BAD = [
    "another secret",
    "truncated signature",
    "signature one character off",
    "another reader's signature",
    "non-ASCII signature",
    "empty signature",
    "no signature",
    "no token",
    "no query",
    "token twice",
    "signed but unknown token",
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case", BAD)
def test_a_bad_link_is_400_and_changes_nothing(listed: Project, client: httpx.Client, case: str, method: str) -> None:
    query = _bad_queries(listed)[case]
    path = urlsplit(listed.config().digest.unsubscribe_url).path

    response = client.request(
        method, f"{path}?{query}" if query else path, data=ONE_CLICK if method == "POST" else None
    )

    assert response.status_code == 400
    assert_private_page(response)
    assert "This unsubscribe link does not work" in response.text
    assert "@" not in response.text  # nobody's address, not even masked
    assert Forms(response.text).forms == []
    assert states(listed) == ALL_ACTIVE


def test_with_recipients_to_the_path_is_404_for_every_method(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_UNSUBSCRIBE_SECRET", raising=False)  # not needed for recipients = "to"
    token = "some-token-0123456789"
    query = urlencode({"s": token, "t": subscribers.signature(SECRET.encode(), token)})
    with Running(project.config()) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            assert http.request(method, f"/unsubscribe?{query}").status_code == 404, method


def test_a_store_failure_is_503_and_changes_nothing(listed: Project, client: httpx.Client) -> None:
    target = link(listed, "ada@example.org")
    store = listed.open_store()
    try:
        with store.transaction() as conn:
            conn.execute(text("ALTER TABLE subscribers RENAME TO subscribers_away"))
        response = client.post(target, data=ONE_CLICK)
        with store.transaction() as conn:
            conn.execute(text("ALTER TABLE subscribers_away RENAME TO subscribers"))
    finally:
        store.close()

    assert response.status_code == 503
    assert_private_page(response)
    assert "Nothing was changed" in response.text
    assert states(listed) == ALL_ACTIVE


# -- end to end: the digest's own link, then the next digest ---------------------------------------


def _digest_copies(project: Project, seen: set[Path]) -> tuple[Path, dict[str, EmailMessage]]:
    """The outbox folder of the digest written since ``seen``, and its copies by To address."""
    [folder] = [path for path in project.outbox.iterdir() if path.is_dir() and path not in seen]
    copies: dict[str, EmailMessage] = {}
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        copies[str(message["To"])] = message
    return folder, copies


def test_an_unsubscribed_reader_gets_no_further_digest(listed: Project, client: httpx.Client) -> None:
    first = listed.cli("run")
    assert first.exit_code == 0, first.output
    folder, copies = _digest_copies(listed, set())
    assert sorted(copies) == sorted(everyone(listed))
    ada = copies["ada@example.org"]
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    personal = str(ada["List-Unsubscribe"]).strip("<>")
    assert personal == "https://news.example.org" + link(listed, "ada@example.org")

    response = client.post(_relative(personal), data=ONE_CLICK)  # what the mail client does

    assert response.status_code == 200
    listed.add_article("second.md", "---\ntitle: Second story\n---\nA fresh paragraph for the second digest.\n")
    second = listed.cli("run")
    assert second.exit_code == 0, second.output
    _, later = _digest_copies(listed, {folder})
    assert sorted(later) == ["Grace.Hopper@example.net", "linus@example.com"]
    for message in later.values():
        body = message.get_body(("plain",))
        assert body is not None
        assert "Second story" in body.get_content()


# -- the command ----------------------------------------------------------------------------------


def test_the_serve_process_unsubscribes_and_keeps_tokens_out_of_its_log(listed: Project, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "publisher", "--config", str(listed.config_path), "serve", "--port", str(port)]
    stderr_path = tmp_path / "serve-stderr.log"
    target = link(listed, "ada@example.org")
    with child_process(command, cwd=listed.root, stderr=stderr_path) as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
        assert line.startswith(f"serve: http://127.0.0.1:{port}/"), line + stderr_path.read_text()
        response = httpx.post(f"http://127.0.0.1:{port}{target}", data=ONE_CLICK, timeout=TIMEOUT)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)

    assert response.status_code == 200
    assert process.returncode == 0
    log = stderr_path.read_text()
    assert '"POST /unsubscribe HTTP/1.1" 200' in log, log
    token, sig = urlsplit(target).query.split("&")
    assert token.removeprefix("s=") not in log
    assert sig.removeprefix("t=") not in log
    assert states(listed)["ada@example.org"] == "unsubscribed"


def test_serve_without_the_link_secret_is_one_error_line(listed: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_UNSUBSCRIBE_SECRET")

    result = listed.cli("serve", "--port", "0")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "publisher: error: publisher.toml: [digest] secret_env: environment variable PUBLISHER_UNSUBSCRIBE_SECRET "
        "is not set; personal unsubscribe links are signed with it\n"
    )
