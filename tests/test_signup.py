"""Readers who sign themselves up through ``publisher serve`` (issue 14): double opt-in.

A real uvicorn server on 127.0.0.1 (``Running``), real HMAC, the outbox mailer writing real
.eml files that are read back with the stdlib ``email`` parser. The clock is NOW (the
``at_now`` fixture) in the server too. A "mail scanner" GETs (and HEADs) every link of every
email, as link-checking gateways and previews do; nothing it fetches may confirm anyone.
"""

from __future__ import annotations

import email
import email.policy
import math
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from publisher import clock, signup, signup_pages, subscribers
from publisher.notices import Sender
from publisher.store import Store
from publisher.store.consents import consents
from publisher.store.notices import Notice, notices, unfinished
from tests.conftest import NOW, Project
from tests.test_server import TIMEOUT, Running
from tests.test_unsubscribe import Forms

SECRET = "signup-secret-Hq83Lm2Vz7xK"
SITE = "https://news.example.org"
ORIGIN = {"Origin": SITE}
READER = "reader@example.org"


@pytest.fixture
def listed(project: Project, monkeypatch: pytest.MonkeyPatch, at_now: datetime) -> Project:
    """A project sending to its own list, the link secret in the environment, the clock at NOW."""
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    project.configure(digest={"recipients": "subscribers"})
    return project


@pytest.fixture
def server(listed: Project) -> Iterator[Running]:
    with Running(listed.config()) as running:
        yield running


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT, follow_redirects=False) as http:
        yield http


def sender(server: Running) -> Sender:
    found: Sender = server.server.config.app.pages.state.notices
    return found


def settle(server: Running) -> None:
    """Wait until the server's notice thread has sent what it was asked to (no sleeping)."""
    assert sender(server).wait_idle(TIMEOUT), "the notices were not sent in time"


def sign_up(http: httpx.Client, address: str, **headers: str) -> httpx.Response:
    return http.post("/subscribe", data={"email": address, "website": ""}, headers=ORIGIN | headers)


def mails(project: Project, kind: str) -> dict[str, list[EmailMessage]]:
    """The notices of ``kind`` (confirm, welcome) in the outbox, by To address, oldest first
    (by when their folder was written: under a frozen clock their names share one time)."""
    found: dict[str, list[EmailMessage]] = {}
    if not project.outbox.exists():
        return found
    for folder in sorted(project.outbox.glob(f"{kind}-*"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        for path in folder.glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.setdefault(str(message["To"]), []).append(message)
    return found


def digest_copies(project: Project) -> dict[str, EmailMessage]:
    copies: dict[str, EmailMessage] = {}
    for folder in project.outbox.iterdir():
        if folder.is_dir() and not folder.name.startswith(("confirm-", "welcome-")):
            for path in folder.glob("*.eml"):
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                copies[str(message["To"])] = message
    return copies


def states(project: Project) -> dict[str, str]:
    store = project.open_store()
    try:
        return {s.email: s.state for s in subscribers.listing(store, include_unsubscribed=True)}
    finally:
        store.close()


def table(project: Project, which: object) -> list[dict[str, object]]:
    store = project.open_store()
    try:
        with store.transaction() as conn:
            return [dict(row) for row in conn.execute(which.select()).mappings()]  # type: ignore[attr-defined]
    finally:
        store.close()


class Links(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if name == "href" and value]


def links_of(message: EmailMessage) -> set[str]:
    """Every URL of the message: the HTML's hrefs, the text's URLs, List-Unsubscribe's."""
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    found = set(Links(html.get_content()).hrefs)
    found |= set(re.findall(r"https?://\S+", text.get_content()))
    found |= set(re.findall(r"<(https?://[^>]+)>", str(message.get("List-Unsubscribe", ""))))
    return found


def local(url: str) -> str:
    """A link of ours as a path and query on the test server."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == SITE, url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def scan(http: httpx.Client, message: EmailMessage) -> int:
    """What a mail scanner does: GET and HEAD every link of ours. Returns the requests made."""
    made = 0
    for url in links_of(message):
        if url.startswith(SITE):
            for method in ("GET", "HEAD"):
                response = http.request(method, local(url))
                assert response.status_code in (200, 404), (method, url, response.status_code)
                made += 1
    return made


def confirm_link(message: EmailMessage) -> str:
    [link] = [u for u in links_of(message) if "/subscribe/confirm?" in u]
    return link


# -- end to end -----------------------------------------------------------------------------------


def test_sign_up_confirm_welcome_digest_with_a_mail_scanner_in_between(
    listed: Project, server: Running, client: httpx.Client
) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    [(method, action, hidden, buttons)] = Forms(page.text).forms
    assert (method, buttons) == ("post", ["Subscribe"])
    assert listed.config().signup.consent_text in page.text  # type: ignore[union-attr]
    sent = client.post(urljoin(str(page.url), action), data={"email": READER, "website": "", **hidden}, headers=ORIGIN)
    assert sent.status_code == 200
    assert "Check your inbox" in sent.text
    assert sign_up(client, "never.confirms@example.org").status_code == 200
    settle(server)

    [confirmation] = mails(listed, "confirm")[READER]
    assert str(confirmation["Subject"]) == "Confirm your subscription to Example News"
    assert str(confirmation["From"]) == "Example News <news@example.org>"
    assert "List-Unsubscribe-Post" not in confirmation  # a confirmation is no list mail to one-click
    assert states(listed) == {READER: "pending", "never.confirms@example.org": "pending"}

    # The scanner fetches every link of the confirmation, the confirm link itself included.
    assert scan(client, confirmation) >= 4
    assert states(listed) == {READER: "pending", "never.confirms@example.org": "pending"}
    settle(server)
    assert mails(listed, "welcome") == {}

    # The reader: the link, then the one button on the page it opens.
    link = local(confirm_link(confirmation))
    shown = client.get(link)
    [(method, action, hidden, buttons)] = Forms(shown.text).forms
    assert (method, hidden, buttons) == ("post", {}, [signup.CONFIRM_TEXT])
    assert states(listed)[READER] == "pending"
    done = client.post(urljoin(str(shown.url), action))
    assert done.status_code == 200
    assert "You are subscribed" in done.text
    assert states(listed)[READER] == "active"
    again = client.post(urljoin(str(shown.url), action))  # a second click: no second welcome
    assert (again.status_code, "You are subscribed" in again.text) == (200, True)
    settle(server)

    [welcome] = mails(listed, "welcome")[READER]
    assert str(welcome["Subject"]) == "Welcome to Example News"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    scan(client, welcome)  # GETs of the unsubscribe link change nothing either
    assert states(listed)[READER] == "active"

    run = listed.cli("run")
    assert run.exit_code == 0, run.output
    copies = digest_copies(listed)
    assert sorted(copies) == [READER]  # the reader, and not the one who never confirmed
    assert len(mails(listed, "confirm")) == 2 and len(mails(listed, "welcome")) == 1

    # Each notice went through the journal once: accepted, one attempt.
    sent_notices = table(listed, notices)
    assert sorted((n["kind"], n["state"], n["attempts"]) for n in sent_notices) == [
        ("confirm", "accepted", 1),
        ("confirm", "accepted", 1),
        ("welcome", "accepted", 1),
    ]
    record = [(c["method"], c["text"], c["client"]) for c in table(listed, consents)]
    consent_text = listed.config().signup.consent_text  # type: ignore[union-attr]
    assert record == [
        ("form", consent_text, None),
        ("form", consent_text, None),
        ("confirm", f"{signup.CONFIRM_TEXT} ({consent_text})", None),
    ]


def test_status_counts_sign_ups_and_confirmations(listed: Project, server: Running, client: httpx.Client) -> None:
    for n in range(3):
        assert sign_up(client, f"r{n}@example.org").status_code == 200
    settle(server)
    message = mails(listed, "confirm")["r0@example.org"][0]
    shown = client.get(local(confirm_link(message)))
    [(_, action, _, _)] = Forms(shown.text).forms
    assert client.post(urljoin(str(shown.url), action)).status_code == 200
    settle(server)  # the welcome's log line is written before the commands below read stderr

    lines = listed.cli("status").stdout.splitlines()
    assert "sign-ups: 3 in 7 days, 3 in 30; confirmed: 1 in 7 days, 1 in 30" in lines
    assert "subscribers: 1 active, 0 unsubscribed, 2 pending" in lines
    listing = listed.cli("subscribers", "list", "--all")
    assert listing.stderr == "subscribers: 1 active, 0 unsubscribed, 2 pending\n"
    import json

    shown_json = json.loads(listed.cli("status", "--json").stdout)
    assert shown_json["signups"] == {
        "7d": {"signups": 3, "confirmations": 1},
        "30d": {"signups": 3, "confirmations": 1},
    }


# -- abuse ----------------------------------------------------------------------------------------


def test_a_thousand_sign_ups_for_one_address_mail_it_once(listed: Project) -> None:
    # Each request from another client (a trusted proxy's header), so only the per-address
    # rules stand between them and the inbox.
    config = listed.configure(signup={"client_header": "X-Real-IP"})
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        answers = {
            (r.status_code, r.text)
            for r in (sign_up(http, READER, **{"X-Real-IP": f"10.0.{n // 250}.{n % 250}"}) for n in range(1000))
        }
        settle(server)
    assert len(answers) == 1 and next(iter(answers))[0] == 200  # every answer alike
    assert len(mails(listed, "confirm")[READER]) == 1
    # A restarted server (fresh rate limits) still sends none within the window: the store says.
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        assert sign_up(http, READER, **{"X-Real-IP": "10.9.9.9"}).status_code == 200
        settle(server)
    assert len(mails(listed, "confirm")[READER]) == 1
    assert [c["method"] for c in table(listed, consents)] == ["form"]


def test_after_the_window_one_more_confirmation_may_go(listed: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    with Running(listed.config()) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        sign_up(http, READER)
        settle(server)
        monkeypatch.setenv(clock.ENV, (NOW + timedelta(hours=24, seconds=1)).isoformat())
        sign_up(http, READER)  # the same client and address: within both bursts
        settle(server)
    first, second = mails(listed, "confirm")[READER]
    assert confirm_link(first) != confirm_link(second)


def test_a_thousand_sign_ups_from_one_client_stop_at_its_limit(listed: Project, server: Running) -> None:
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        codes = [sign_up(http, f"reader{n}@example.org").status_code for n in range(1000)]
    minutes = (time.monotonic() - started) / 60
    settle(server)
    allowed = signup_pages.CLIENT_BURST + math.ceil(minutes * signup_pages.CLIENT_PER_MINUTE)
    assert codes.count(200) <= allowed
    assert set(codes[allowed:]) == {429}
    assert len(mails(listed, "confirm")) == codes.count(200)
    assert len(states(listed)) == codes.count(200)


def test_bots_that_fill_the_honeypot_get_the_same_answer_and_nothing_else(listed: Project) -> None:
    config = listed.configure(signup={"client_header": "X-Real-IP"})
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        human = sign_up(http, "human@example.org", **{"X-Real-IP": "10.1.1.1"})
        bots = [
            http.post(
                "/subscribe",
                data={"email": f"bot{n}@example.org", "website": "http://spam.example"},
                headers=ORIGIN | {"X-Real-IP": f"10.2.0.{n}"},
            )
            for n in range(50)
        ]
        settle(server)
    assert {(b.status_code, b.text) for b in bots} == {(human.status_code, human.text)}
    assert states(listed) == {"human@example.org": "pending"}
    assert list(mails(listed, "confirm")) == ["human@example.org"]


BOUNDARY = "----signup-test-7MA4YWxk"
MALFORMED: dict[str, tuple[bytes, str]] = {
    "json": (b'{"email": "a@example.org"}', "application/json"),
    "multipart": (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.org\r\n--{BOUNDARY}--\r\n'
        ).encode(),
        f"multipart/form-data; boundary={BOUNDARY}",
    ),
    "not UTF-8": (b"email=a%40example.org&website=\xff\xfe", "application/x-www-form-urlencoded"),
    "no email": (b"website=", "application/x-www-form-urlencoded"),
    "two emails": (b"email=a%40example.org&email=b%40example.org", "application/x-www-form-urlencoded"),
    "not key=value": (b"email=a%40example.org&junk", "application/x-www-form-urlencoded"),
    "too many fields": (
        b"&".join(b"f%d=1" % n for n in range(20)) + b"&email=a%40example.org",
        "application/x-www-form-urlencoded",
    ),
    "not an address": (b"email=not-an-address", "application/x-www-form-urlencoded"),
    "header injection": (b"email=a%40example.org%0D%0ABcc%3A+b%40example.org", "application/x-www-form-urlencoded"),
    "empty": (b"", "application/x-www-form-urlencoded"),
}


def test_malformed_and_oversized_bodies_are_refused_and_change_nothing(listed: Project) -> None:
    config = listed.configure(signup={"client_header": "X-Real-IP"})  # each case its own client
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        for n, (case, (body, kind)) in enumerate(MALFORMED.items()):
            headers = ORIGIN | {"Content-Type": kind, "X-Real-IP": f"10.3.0.{n}"}
            response = http.post("/subscribe", content=body, headers=headers)
            assert response.status_code == 400, case
            if case in ("json", "not UTF-8"):
                assert "Nothing was sent" in response.text
        large = b"email=a%40example.org&website=" + b"x" * signup_pages.MAX_BODY
        form = ORIGIN | {"Content-Type": "application/x-www-form-urlencoded"}
        declared = http.post("/subscribe", content=large, headers=form | {"X-Real-IP": "10.4.0.1"})
        streamed = http.post(  # chunked: no Content-Length to refuse it by
            "/subscribe", content=iter([large[:1000], large[1000:]]), headers=form | {"X-Real-IP": "10.4.0.2"}
        )
        settle(server)
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert streamed.request.headers.get("transfer-encoding") == "chunked"
    assert states(listed) == {}
    assert mails(listed, "confirm") == {}


def test_a_form_posted_from_another_origin_is_refused(listed: Project) -> None:
    config = listed.configure(signup={"origins": ["https://blog.example.net"], "client_header": "X-Real-IP"})
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        page = http.get("/subscribe")
        [(_, _, hidden, _)] = Forms(page.text).forms
        token = hidden["form_token"]

        def post(address: str, headers: dict[str, str], **extra: str) -> int:
            data = {"email": address, "website": "", **extra}
            return http.post(
                "/subscribe", data=data, headers=headers | {"X-Real-IP": address.split("@")[0][-3:]}
            ).status_code

        refused = {
            "another origin": post("x1@example.org", {"Origin": "https://evil.example"}),
            "a lookalike origin": post("x2@example.org", {"Origin": "https://news.example.org.evil.example"}),
            "another origin's referer": post("x3@example.org", {"Referer": "https://evil.example/page"}),
            "origin null, no token": post("x4@example.org", {"Origin": "null"}),
            "neither, no token": post("x5@example.org", {}),
            "neither, a forged token": post("x6@example.org", {}, form_token="9999999999.00ff"),
            "another origin even with a token": post(
                "x7@example.org", {"Origin": "https://evil.example"}, form_token=token
            ),
        }
        accepted = {
            "the site": post("y1@example.org", {"Origin": SITE}),
            "an allowed site (the snippet)": post("y2@example.org", {"Origin": "https://blog.example.net"}),
            "the site's referer": post("y3@example.org", {"Referer": SITE + "/about/"}),
            "neither, with our form's token": post("y4@example.org", {}, form_token=token),
        }
        settle(server)
    assert refused == dict.fromkeys(refused, 403)
    assert accepted == dict.fromkeys(accepted, 200)
    assert sorted(mails(listed, "confirm")) == ["y1@example.org", "y2@example.org", "y3@example.org", "y4@example.org"]


def test_confirmation_links_that_must_not_confirm(listed: Project, server: Running, client: httpx.Client) -> None:
    sign_up(client, READER)
    settle(server)
    link = confirm_link(mails(listed, "confirm")[READER][0])
    query = dict(pair.split("=", 1) for pair in urlsplit(link).query.split("&"))
    token, expires, sig = query["s"], query["e"], query["t"]
    unsubscribe_sig = subscribers.signature(SECRET.encode(), token)
    bad = {
        "wrong signature": f"s={token}&e={expires}&t={sig[:-1]}{'0' if sig[-1] != '0' else '1'}",
        "later expiry": f"s={token}&e={int(expires) + 86400}&t={sig}",
        "an unsubscribe signature": f"s={token}&e={expires}&t={unsubscribe_sig}",
        "no signature": f"s={token}&e={expires}",
        "token twice": f"s={token}&s={token}&e={expires}&t={sig}",
    }
    for case, bad_query in bad.items():
        for method in ("GET", "POST"):
            response = client.request(method, f"/subscribe/confirm?{bad_query}")
            assert response.status_code == 400, (case, method)
    assert states(listed) == {READER: "pending"}


def test_an_expired_link_does_not_confirm(
    listed: Project, server: Running, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, READER)
    settle(server)
    link = local(confirm_link(mails(listed, "confirm")[READER][0]))
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(hours=24)).isoformat())
    assert client.post(link).status_code == 400
    assert states(listed) == {READER: "pending"}


def test_a_link_sent_before_the_reader_unsubscribed_does_not_bring_them_back(
    listed: Project, server: Running, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_up(client, READER)
    settle(server)
    confirmation = mails(listed, "confirm")[READER][0]
    link = local(confirm_link(confirmation))
    assert client.post(link).status_code == 200
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(hours=1)).isoformat())
    [unsubscribe] = [u for u in links_of(confirmation) if "/unsubscribe?" in u]
    assert client.post(local(unsubscribe), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert states(listed) == {READER: "unsubscribed"}

    assert client.post(link).status_code == 400
    assert states(listed) == {READER: "unsubscribed"}


def test_the_unsubscribe_link_of_a_confirmation_stops_a_pending_sign_up(
    listed: Project, server: Running, client: httpx.Client
) -> None:
    sign_up(client, READER)
    settle(server)
    [unsubscribe] = [u for u in links_of(mails(listed, "confirm")[READER][0]) if "/unsubscribe?" in u]
    assert client.post(local(unsubscribe), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert states(listed) == {READER: "unsubscribed"}


def test_the_unsubscribe_endpoint_is_rate_limited_per_client(listed: Project, server: Running) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        codes = [http.get("/unsubscribe?s=x&t=y").status_code for _ in range(signup_pages.PAGE_BURST + 5)]
    assert codes[0] == 400 and codes[-1] == 429
    assert codes.count(400) <= signup_pages.PAGE_BURST + 1


def test_the_client_address_is_kept_only_when_asked(listed: Project) -> None:
    config = listed.configure(signup={"record_client": True})
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        sign_up(http, READER)
        settle(server)
    assert [c["client"] for c in table(listed, consents)] == ["127.0.0.1"]


def test_imports_and_additions_record_consent_and_add_confirms_a_pending_reader(
    listed: Project, server: Running, client: httpx.Client, tmp_path: Path
) -> None:
    sign_up(client, READER)
    settle(server)
    readers = tmp_path / "readers.csv"
    readers.write_text("email\nimported@example.org\n", encoding="utf-8")
    assert listed.cli("subscribers", "import", str(readers)).exit_code == 0
    assert listed.cli("subscribers", "add", READER).stdout == f"resubscribed {READER}\n"
    assert states(listed) == {READER: "active", "imported@example.org": "active"}
    assert [(c["method"], c["text"]) for c in table(listed, consents)] == [
        ("form", listed.config().signup.consent_text),  # type: ignore[union-attr]
        ("import", "imported from readers.csv"),
        ("cli", subscribers.BY_HAND[1]),
    ]


def test_a_notice_found_mid_send_is_held_in_doubt_by_a_mailer_that_may_repeat_it(listed: Project) -> None:
    """A crash between claim and answer: a provider without idempotency keys must not be asked again."""
    from publisher import notices as notices_module
    from publisher.delivery import Envelope, Receipt

    class Counting:
        name, idempotent, batch_size = "counting", False, 1

        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, envelope: Envelope) -> Receipt:
            self.sent.append(envelope.key)
            return Receipt(provider_id="id-1", detail="taken")

        def prepare(self) -> None: ...

        def close(self) -> None: ...

    config = listed.config()
    store = Store.open(config.store_url)
    try:
        assert signup.sign_up(config, store, READER, NOW, None) == signup.SignUpOutcome.QUEUED
        [queued] = notices_module.table.unfinished(store)
        assert notices_module.table.claim(store, queued, NOW)  # then the process died
        mailer = Counting()
        with clock.frozen(NOW + timedelta(hours=1)):
            assert [s.state for s in notices_module.send_due(config, store, mailer)] == ["in_doubt"]
            assert notices_module.send_due(config, store, mailer) == []
        assert mailer.sent == []
        assert signup.sign_up(config, store, "other@example.org", NOW, None) == signup.SignUpOutcome.QUEUED
        with clock.frozen(NOW):
            assert [s.state for s in notices_module.send_due(config, store, mailer)] == ["accepted"]
            assert notices_module.send_due(config, store, mailer) == []  # once
        assert len(mailer.sent) == 1
    finally:
        store.close()
    # The operator hears of it: a sign-up email that may not have gone is a problem for a week.
    checked = listed.cli("status", "--check")
    assert checked.exit_code == 1
    assert "sign-up emails in the last 7 days: 0 failed, 1 in doubt" in checked.stdout + checked.stderr


def test_with_recipients_to_there_is_no_sign_up_page(project: Project) -> None:
    with Running(project.config()) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        assert http.get("/subscribe").status_code == 404
        assert http.post("/subscribe", data={"email": READER}).status_code == 405
        assert http.get("/subscribe/confirm").status_code == 404


def test_the_sign_up_transactions_on_postgresql(listed: Project, pg_url: str) -> None:
    config = listed.configure(store={"url": pg_url})
    store = Store.open(config.store_url)
    try:
        assert signup.sign_up(config, store, READER, NOW, "192.0.2.1") == signup.SignUpOutcome.QUEUED
        assert signup.sign_up(config, store, READER, NOW + timedelta(hours=1), None) == signup.SignUpOutcome.RECENT
        [confirmation] = notices_of(store)
        token = subscribers.find(store, READER).token  # type: ignore[union-attr]
        expires = str(int((NOW + timedelta(hours=24)).timestamp()))
        later = NOW + timedelta(minutes=5)
        assert signup.confirm(config, store, token, expires, later, None) == signup.ConfirmOutcome.CONFIRMED
        assert signup.confirm(config, store, token, expires, later, None) == signup.ConfirmOutcome.ALREADY
        assert signup.sign_up(config, store, READER, later, None) == signup.SignUpOutcome.ACTIVE
        assert [n.kind for n in notices_of(store)] == ["confirm", "welcome"]
        assert signup.activity(store, NOW - timedelta(days=7)) == (1, 1)
        assert confirmation.email == READER
    finally:
        store.close()


def notices_of(store: Store) -> list[Notice]:
    return unfinished(store)


def test_a_sign_up_taken_just_before_the_server_stops_is_still_recorded(listed: Project) -> None:
    config = listed.config()
    store = Store.open(config.store_url)
    try:
        thread = Sender(config, store)
        assert thread.submit(lambda: signup.sign_up(config, store, READER, NOW, None))
        thread.stop()
        assert states(listed) == {READER: "pending"}
    finally:
        store.close()
    run = listed.cli("run")
    assert run.exit_code == 0, run.output
    assert list(mails(listed, "confirm")) == [READER]  # by the thread, or left for `publisher run`
    assert [(n["kind"], n["state"]) for n in table(listed, notices)] == [("confirm", "accepted")]


def test_a_broken_notice_template_stops_serve_with_one_line(listed: Project) -> None:
    folder = listed.root / "mine"
    folder.mkdir()
    (folder / "confirm.txt.j2").write_text("Confirm: {{ confirm_url ", encoding="utf-8")
    listed.configure(digest={"templates_dir": "mine"})

    result = listed.cli("serve", "--port", "0")

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("publisher: error: publisher.toml: [digest] templates_dir: ")
    assert f"{folder / 'confirm.txt.j2'}:1: unexpected end of template" in result.stderr


def test_the_welcome_comes_from_the_operators_template_when_there_is_one(listed: Project) -> None:
    folder = listed.root / "mine"
    folder.mkdir()
    (folder / "welcome.txt.j2").write_text("Hello from {{ site.title }}!\n{{ unsubscribe_url }}\n", encoding="utf-8")
    config = listed.configure(digest={"templates_dir": "mine"})
    with Running(config) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        sign_up(http, READER)
        settle(server)
        assert http.post(local(confirm_link(mails(listed, "confirm")[READER][0]))).status_code == 200
        settle(server)
    [welcome] = mails(listed, "welcome")[READER]
    text = welcome.get_body(("plain",))
    assert text is not None
    assert text.get_content().startswith("Hello from Example News!\r\n")  # CRLF: the SMTP policy
