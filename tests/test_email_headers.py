"""The unsubscribe and list headers, rule by rule, on what each provider is handed and in the outbox.

RFC 2369 (List-Unsubscribe: URIs in angle brackets, https first, mailto beside it when set),
RFC 8058 (List-Unsubscribe-Post: List-Unsubscribe=One-Click only where a POST to the https URI
unsubscribes the very reader, so never with the link that names nobody, nor in a test send),
RFC 2919 (List-Id), RFC 5322 (one Message-ID per copy, lines within 998 characters). The
Gmail and Yahoo bulk-sender rules of 2024 ask for RFC 8058 one-click in bulk mail: the local
list's digests have it. Each provider is the fake of its API on 127.0.0.1, driven by the CLI.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from contextlib import closing
from email.message import EmailMessage
from typing import Any

import pytest
import tomli_w

from publisher import config as config_module
from publisher import subscribers
from publisher.errors import ConfigError
from tests.conftest import Project
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, subscribe, tokens
from tests.endpoint import Endpoint
from tests.fakes.mailgun import FakeMailgun
from tests.fakes.postmark import FakePostmark
from tests.fakes.resend import FakeResend
from tests.fakes.sendgrid import FakeSendGrid

KEY = "hdr-Kq3Zt8Vw2Lp6Nx4R"
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
READERS = ["ada@example.org", "grace@example.net"]
MAILTO = "unsubscribe@example.org"
GENERIC = "https://news.example.org/unsubscribe"
URI = re.compile(r"<([^<>\s]+)>")
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture(autouse=True)
def _no_secrets_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# -- the providers: each gives the headers every reader's copy carries --------------------------

Headers = dict[str, str]


def _postmark(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    fake = FakePostmark(token=KEY)
    endpoint.handler = fake.handle
    project.configure(mailer={"provider": "postmark", "url": endpoint.url, "retries": 0, "timeout": 5})
    return lambda address: fake.copies(address)[-1].headers


def _resend(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    fake = FakeResend(key=KEY)
    endpoint.handler = fake.handle
    project.configure(mailer={"provider": "resend", "url": endpoint.url, "retries": 0, "timeout": 5})
    return lambda address: fake.copies(address)[-1].headers


def _sendgrid(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    fake = FakeSendGrid(key=KEY)
    endpoint.handler = fake.handle
    project.configure(mailer={"provider": "sendgrid", "url": endpoint.url, "retries": 0, "timeout": 5})
    return lambda address: fake.copies(address)[-1].headers


def _mailgun(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    fake = FakeMailgun(domain="mg.example.org", key=KEY)
    endpoint.handler = fake.handle
    project.configure(
        mailer={"provider": "mailgun", "url": endpoint.url, "domain": "mg.example.org", "retries": 0, "timeout": 5}
    )
    return lambda address: fake.copies(address)[-1].headers


def _webhook(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    """The webhook is handed the digest's headers, with the placeholder where each link goes."""
    endpoint.handler = lambda request: (200, {"id": "1"}, {})
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "retries": 0, "timeout": 5})

    def headers(address: str) -> Headers:
        body: dict[str, Any] = endpoint.requests[-1].json()
        links = {r["email"]: r["unsubscribe_url"] for r in body["recipients"]}
        return {name: value.replace(body["personal"], links[address]) for name, value in body["headers"].items()}

    return headers


def _outbox(project: Project, endpoint: Endpoint) -> Callable[[str], Headers]:
    def headers(address: str) -> Headers:
        found = sorted(project.outbox.rglob("*.eml"))
        files = [p for p in found if p.name.lower() == f"{address.lower()}.eml"] or found
        raw = files[-1].read_bytes()
        _check_rfc5322(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return {name: str(value) for name, value in message.items()}

    return headers


PROVIDERS = {
    "postmark": _postmark,
    "resend": _resend,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "webhook": _webhook,
    "outbox": _outbox,
}


def _check_rfc5322(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert len(line) <= 998 and line.isascii(), line[:100]
    names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
    for single in (b"date", b"from", b"to", b"subject", b"message-id", b"list-unsubscribe", b"list-id"):
        assert names.count(single) == 1, (single, names)


def _uris(headers: Headers) -> list[str]:
    """RFC 2369: the value is a list of <URI>s, comma separated, and nothing else."""
    value = headers["List-Unsubscribe"]
    uris = URI.findall(value)
    assert URI.sub("", value).replace(",", "").strip() == "", value
    return uris


def _send(project: Project, *args: str) -> None:
    result = project.cli(*args, env=ENV)
    assert result.exit_code == 0, result.output


# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_personal_link_is_one_click_and_names_its_reader(project: Project, endpoint: Endpoint, provider: str) -> None:
    subscribe(project, READERS)
    project.configure(digest={"unsubscribe_mailto": MAILTO})
    headers_of = PROVIDERS[provider](project, endpoint)

    _send(project, "run")

    holders = tokens(project)
    message_ids = set()
    for address in READERS:
        headers = headers_of(address)
        https, mailto = _uris(headers)
        # RFC 2369: https first, then the mailto address, asking for the unsubscribe.
        assert https.startswith(GENERIC + "?s=")
        assert mailto == f"mailto:{MAILTO}?subject=unsubscribe"
        # RFC 8058 (and Gmail/Yahoo 2024): one-click, for a link that unsubscribes this reader.
        assert headers["List-Unsubscribe-Post"] == ONE_CLICK
        token, sig = re.findall(r"s=([\w-]+)&t=([\w-]+)", https)[0]
        assert subscribers.check(UNSUBSCRIBE_SECRET.encode(), token, sig)
        assert holders[token] == address
        # RFC 2919: a list identifier in angle brackets.
        assert re.fullmatch(r".+ <digest\.news\.example\.org>", headers["List-Id"])
        if "Message-ID" in headers:
            message_ids.add(headers["Message-ID"])
    assert len(message_ids) in (0, 1, len(READERS))  # RFC 5322: one per copy, where the copy is ours


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_link_that_names_nobody_is_never_one_click(project: Project, endpoint: Endpoint, provider: str) -> None:
    headers_of = PROVIDERS[provider](project, endpoint)  # recipients = "to", the default

    _send(project, "run")

    headers = headers_of("subscribers@lists.example.org")
    assert _uris(headers) == [GENERIC]
    assert "List-Unsubscribe-Post" not in headers  # a POST there unsubscribes nobody


@pytest.mark.parametrize("provider", ["postmark", "sendgrid", "outbox"])
def test_a_test_send_is_never_one_click(project: Project, endpoint: Endpoint, provider: str) -> None:
    subscribe(project, READERS)
    headers_of = PROVIDERS[provider](project, endpoint)
    _send(project, "ingest", str(project.articles))

    _send(project, "digest", "test", "--to", "editor@example.org")

    headers = headers_of("editor@example.org")
    assert _uris(headers) == [GENERIC]
    assert "List-Unsubscribe-Post" not in headers


def test_the_preview_shows_a_personal_link_a_reader_would_get(project: Project) -> None:
    subscribe(project, READERS)
    _send(project, "ingest", str(project.articles))

    _send(project, "digest", "preview", "--out", str(project.root / "preview"))

    [eml] = (project.root / "preview").glob("*.eml")
    [html] = (project.root / "preview").glob("*.html")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    [link] = _uris({"List-Unsubscribe": str(message["List-Unsubscribe"])})
    assert re.fullmatch(re.escape(GENERIC) + r"\?s=[\w-]+&t=[\w-]{43}", link)
    assert "unsubscribe.invalid" not in html.read_text() and link.replace("&", "&amp;") in html.read_text()
    with closing(project.open_store()) as store:
        assert all(s.token not in link for s in subscribers.listing(store))  # nobody's real link


@pytest.mark.parametrize("value", ["Unsubscribe <u@example.org>", "not an address"])
def test_a_mailto_unsubscribe_must_be_a_bare_address(project: Project, value: str) -> None:
    project.settings["digest"]["unsubscribe_mailto"] = value
    project.config_path.write_text(tomli_w.dumps(project.settings), encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        config_module.load(project.config_path)

    assert caught.value.where == f"{project.config_path}: [digest] unsubscribe_mailto"
    assert "\n" not in str(caught.value)
