"""Where issue 14's parts meet: sign-up, preferences, GDPR and bounces, on one reader's life.

A real uvicorn server on 127.0.0.1 (``Running``) takes the sign-up form, the confirmation, the
preferences page and the providers' webhooks (signed with keys made here, see
tests/bounce_payloads.py); the outbox mailer writes real .eml files, read back with the stdlib
``email`` parser. The clock is NOW. The store is SQLite, and PostgreSQL where new SQL runs.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, select, text

from publisher import journal, notices, signup, subscribers
from publisher.bounces import record, ses
from publisher.bounces.events import MailEvent
from publisher.states import MailEventKind
from publisher.store.notices import notices as notices_table
from publisher.store.suppressions import mail_events
from tests import bounce_payloads as payloads
from tests.conftest import NOW, Project, markdown_article
from tests.test_bounces import KEYS
from tests.test_server import TIMEOUT, Running
from tests.test_signup import confirm_link, local, mails, settle, sign_up

SECRET = "readers-secret-Vd82Kq0Lm4Zx"
PAGE = "https://news.example.org/preferences"
ADA, BOB = "ada@example.org", "bob@example.org"


def configure(project: Project, monkeypatch: pytest.MonkeyPatch, store: dict[str, str]) -> Project:
    """A local list with sign-up (client addresses kept), a preferences page, and every
    provider's webhook; a tagged article to choose."""
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("PUBLISHER_MAILGUN_WEBHOOK_KEY", payloads.MAILGUN_KEY)
    monkeypatch.setenv("PUBLISHER_POSTMARK_WEBHOOK_SECRET", payloads.POSTMARK_SECRET)
    monkeypatch.setenv("PUBLISHER_RESEND_WEBHOOK_SECRET", payloads.RESEND_SECRET)
    project.configure(
        digest={"recipients": "subscribers", "preferences_url": PAGE},
        signup={"record_client": True},
        bounces={"ses_topics": [payloads.TOPIC], "sendgrid_public_key": KEYS.sendgrid_public},
        store=store,
    )
    project.add_article("python-1.md", markdown_article("Snakes at work", "2026-11-23", ["Python"]))
    return project


@pytest.fixture
def listed(project: Project, monkeypatch: pytest.MonkeyPatch, at_now: datetime) -> Project:
    """The site on SQLite."""
    return configure(project, monkeypatch, {})


@pytest.fixture(params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch, at_now: datetime
) -> Project:
    """The site on SQLite, then on PostgreSQL."""
    store = {"url": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    return configure(project, monkeypatch, store)


@pytest.fixture(autouse=True)
def sns_certificate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS stood in for: the SNS certificate URL answers the test's certificate."""
    monkeypatch.setattr(ses, "fetch", lambda url: KEYS.certificate)
    ses._certificate.cache_clear()
    yield
    ses._certificate.cache_clear()


@pytest.fixture
def server(listed: Project) -> Iterator[Running]:
    with Running(listed.config()) as running:
        yield running


@pytest.fixture
def client(server: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        yield http


def join(http: httpx.Client, server: Running, project: Project, address: str) -> EmailMessage:
    """Sign ``address`` up through the form and press the confirmation's button: the welcome."""
    assert sign_up(http, address).status_code == 200
    settle(server)
    confirmed = http.post(local(confirm_link(mails(project, "confirm")[address][-1])))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    settle(server)
    return mails(project, "welcome")[address][-1]


def key_of(project: Project, kind: str, address: str) -> str:
    """The key of the newest notice of ``kind`` to ``address``: the id every provider is sent
    with it (as a digest's batch key), and echoes back in its events."""
    with closing(project.open_store()) as store, store.transaction() as conn:
        query = select(notices_table.c.key).where(notices_table.c.kind == kind, notices_table.c.email == address)
        return str(conn.execute(query.order_by(notices_table.c.id.desc())).scalars().first())


def text_of(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(part.get_content())


def webhook(http: httpx.Client, provider: str, kind: str, address: str, event_id: str, batch_key: str | None) -> None:
    path, body, headers = payloads.MAKERS[provider](KEYS, kind, address, event_id, NOW, batch_key)
    response = http.post(path, content=body, headers=headers)
    assert (response.status_code, response.text) == (200, "ok"), provider


def states(project: Project) -> dict[str, str]:
    with closing(project.open_store()) as store:
        return {s.email: s.state for s in subscribers.listing(store, include_unsubscribed=True)}


def events(project: Project) -> list[dict[str, Any]]:
    with closing(project.open_store()) as store, store.transaction() as conn:
        return [dict(row) for row in conn.execute(select(mail_events).order_by(mail_events.c.id)).mappings()]


def everything(project: Project) -> str:
    """Every row of every table of the store, as one text to search."""
    with closing(project.open_store()) as store, store.transaction() as conn:
        names = sorted(inspect(conn).get_table_names())
        return "\n".join(f"{name}: {list(conn.execute(text(f'SELECT * FROM {name}')).all())!r}" for name in names)


# -- GDPR: all of it exported, all of it erased ---------------------------------------------------


def test_export_holds_and_forget_erases_all_that_is_stored_about_a_reader(site: Project) -> None:
    with Running(site.config()) as server, httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        welcome = join(http, server, site, ADA)
        join(http, server, site, BOB)
        # The welcome links to the reader's own preferences page: a choice made there is kept.
        [choose] = [line.split(": ", 1)[1] for line in text_of(welcome).splitlines() if "Choose your topics" in line]
        assert choose.startswith(PAGE + "?s=")
        assert "Choose your topics</a>" in text_of(welcome, "html")
        run = site.cli("run")  # the digest, to both; and the article whose tag is offered
        assert run.exit_code == 0, run.output
        saved = http.post(local(choose), data={"action": "save", "mode": "some", "topic": ["python"]})
        assert saved.status_code == 200 and "Your choice is saved" in saved.text
        with closing(site.open_store()) as store:
            digest = store.last_digest()
            assert digest is not None
            batch_keys = {b.key for b in journal.batches_of(store, digest.id)}
        webhook(http, "postmark", "soft", ADA, "soft-1", sorted(batch_keys)[0])
        welcome_key = key_of(site, "welcome", ADA)
        webhook(http, "postmark", "soft", ADA, "soft-2", welcome_key)

        exported = site.cli("subscribers", "export", ADA)
        assert exported.exit_code == 0, exported.output
        data = json.loads(exported.stdout)
        assert sorted(data) == ["batches", "consents", "mail_events", "notices", "preferences", "subscriber"]
        assert (data["subscriber"]["email"], data["subscriber"]["state"]) == (ADA, "active")
        consent_text = site.config().signup.consent_text  # type: ignore[union-attr]
        assert [(c["method"], c["client"], c["created_at"]) for c in data["consents"]] == [
            ("form", "127.0.0.1", NOW.isoformat()),
            ("confirm", "127.0.0.1", NOW.isoformat()),
        ]
        assert data["consents"][0]["text"] == consent_text
        assert [(n["kind"], n["email"], n["state"]) for n in data["notices"]] == [
            ("confirm", ADA, "accepted"),
            ("welcome", ADA, "accepted"),
        ]
        assert "Welcome to Example News" in data["notices"][1]["message"]  # the email as it was sent
        assert [(e["kind"], e["batch_key"]) for e in data["mail_events"]] == [
            ("soft_bounce", sorted(batch_keys)[0]),
            ("soft_bounce", welcome_key),  # tied to the welcome it answers
        ]
        assert [p["topics"] for p in data["preferences"]] == [["python"]]
        assert [(b["email"], b["state"]) for b in data["batches"]] == [(ADA, "accepted")]
        token = data["subscriber"]["token"]

        forgotten = site.cli("subscribers", "forget", ADA)
        assert forgotten.exit_code == 0, forgotten.output
        stored = everything(site)
        for trace in (ADA, token, welcome_key):
            assert trace not in stored  # nothing about the reader, in any table
        assert BOB in stored and stored.count("127.0.0.1") == 2  # BOB's own consents stay

        # An event about the erased address afterwards is answered as any and kept nowhere.
        webhook(http, "postmark", "hard", ADA, "hard-1", None)
        assert ADA not in everything(site)
        assert [e["email_key"] for e in events(site)] == []


def test_an_erased_address_may_sign_up_again_itself_but_no_import_brings_it_back(
    listed: Project, server: Running, client: httpx.Client, tmp_path: Path
) -> None:
    join(client, server, listed, ADA)
    assert listed.cli("subscribers", "forget", ADA).exit_code == 0

    readers = tmp_path / "readers.csv"
    readers.write_text(f"email\n{ADA}\n", encoding="utf-8")
    imported = listed.cli("subscribers", "import", str(readers))
    assert imported.exit_code == 0 and "1 erased on request not added" in imported.stdout
    assert listed.cli("subscribers", "add", ADA).exit_code == 1
    assert states(listed) == {}

    # The person's own sign-up is a fresh consent: a confirmation goes, the click subscribes.
    join(client, server, listed, ADA)
    assert states(listed) == {ADA: "active"}
    assert len(mails(listed, "confirm")[ADA]) == 2 and len(mails(listed, "welcome")[ADA]) == 2
    data = json.loads(listed.cli("subscribers", "export", ADA).stdout)
    assert [c["method"] for c in data["consents"]] == ["form", "confirm"]  # the new ones only
    assert [n["kind"] for n in data["notices"]] == ["confirm", "welcome"]

    # The erasure still holds for imports once they leave again and are erased again.
    assert listed.cli("subscribers", "forget", ADA).exit_code == 0
    again = listed.cli("subscribers", "import", str(readers))
    assert "1 erased on request not added" in again.stdout and states(listed) == {}


# -- sign-up and suppression -----------------------------------------------------------------------


def test_a_sign_up_for_a_suppressed_address_mails_nothing_and_keeps_it_suppressed(
    listed: Project, server: Running, client: httpx.Client
) -> None:
    with closing(listed.open_store()) as store:
        subscribers.add(store, [(ADA, None), (BOB, None)], NOW, resubscribe=False)
    assert listed.cli("run").exit_code == 0
    webhook(client, "postmark", "complaint", ADA, "complaint-1", None)
    webhook(client, "postmark", "hard", BOB, "hard-1", None)
    assert states(listed) == {ADA: "complained", BOB: "bounced"}

    answers = [sign_up(client, address) for address in (ADA, BOB, "new@example.org")]
    settle(server)

    assert len({(a.status_code, a.text) for a in answers}) == 1  # the same page for all three
    assert answers[0].status_code == 200 and "Check your inbox" in answers[0].text
    assert sorted(mails(listed, "confirm")) == ["new@example.org"]
    assert states(listed) == {ADA: "complained", BOB: "bounced", "new@example.org": "pending"}
    with closing(listed.open_store()) as store:
        config = listed.config()
        later = NOW + timedelta(days=3)  # past the window: still nothing
        assert signup.sign_up(config, store, ADA, later, None) == signup.SignUpOutcome.SUPPRESSED
        data = json.loads(listed.cli("subscribers", "export", ADA).stdout)
    assert [c["method"] for c in data["consents"]] == []  # no sign-up was recorded for it


def test_a_bounced_confirmation_is_tied_to_it_and_suppresses_the_pending_reader(
    listed: Project, server: Running, client: httpx.Client
) -> None:
    readers = {provider: f"{provider}@example.org" for provider in payloads.PROVIDERS}
    for address in readers.values():
        assert sign_up(client, address).status_code == 200
    settle(server)
    confirmations = {p: mails(listed, "confirm")[a][0] for p, a in readers.items()}
    keys = {p: key_of(listed, "confirm", a) for p, a in readers.items()}

    for provider, address in readers.items():  # each provider echoes the ids it was sent
        webhook(client, provider, "hard", address, f"{provider}-confirm-1", keys[provider])

    found = {e["provider"]: e for e in events(listed)}
    for provider, key in keys.items():
        expected = None if provider == "resend" else key  # Resend echoes no ids
        assert (found[provider]["kind"], found[provider]["digest_id"]) == ("hard_bounce", None)
        assert found[provider]["batch_key"] == expected, provider
    assert set(states(listed).values()) == {"bounced"}

    # The link in the bounced confirmation does not bring the address back, nor does a sign-up.
    refused = client.post(local_path(confirmations["ses"]))
    assert refused.status_code == 400
    assert sign_up(client, readers["ses"]).status_code == 200
    settle(server)
    assert states(listed)[readers["ses"]] == "bounced"
    assert mails(listed, "welcome") == {} and len(mails(listed, "confirm")[readers["ses"]]) == 1


def test_a_confirmation_queued_before_the_address_was_suppressed_is_never_sent(listed: Project) -> None:
    """A provider's report arriving between the sign-up and the sending (the bounce of an
    earlier confirmation, a provider's suppression list synced) stops the email."""
    config = listed.config()
    with closing(listed.open_store()) as store:
        assert signup.sign_up(config, store, ADA, NOW, None) == signup.SignUpOutcome.QUEUED
        bounce = MailEvent("postmark", "hard-1", MailEventKind.HARD_BOUNCE, ADA, NOW)
        record.record(store, [bounce], config.bounces, NOW)

    run = listed.cli("run")

    assert run.exit_code == 0, run.output
    assert mails(listed, "confirm") == {}
    assert states(listed) == {ADA: "bounced"}
    with closing(listed.open_store()) as store, store.transaction() as conn:
        rows = conn.execute(select(notices_table.c.state, notices_table.c.last_error)).all()
    assert [tuple(row) for row in rows] == [("failed", "not sent: the address bounced or complained")]


def local_path(message: EmailMessage) -> str:
    return local(confirm_link(message))


# -- the welcome's link to the preferences page ----------------------------------------------------


def test_the_welcome_links_to_the_preferences_page_only_when_there_is_one(listed: Project) -> None:
    unsubscribe = "https://news.example.org/unsubscribe?s=tok&t=sig"
    config = listed.config()
    with_page = notices.render_welcome(config, unsubscribe, NOW)[1]
    no_page = dataclasses.replace(config, digest=dataclasses.replace(config.digest, preferences_url=""))
    without = notices.render_welcome(no_page, unsubscribe, NOW)[1]
    assert "Choose your topics: https://news.example.org/preferences?s=tok&t=sig" in text_of(parsed(with_page))
    assert 'href="https://news.example.org/preferences?s=tok&amp;t=sig"' in text_of(parsed(with_page), "html")
    assert "preferences" not in text_of(parsed(without)) + text_of(parsed(without), "html")


def parsed(message: bytes) -> EmailMessage:
    found = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(found, EmailMessage)
    return found


# -- status: sign-ups, confirmations, bounces, complaints ------------------------------------------


def test_status_shows_every_count_over_7_and_30_days_in_text_and_json(listed: Project) -> None:
    config = listed.config()
    days = [timedelta(days=n) for n in (20, 20, 2, 1)]  # four sign-ups: two in the last 7 days
    with closing(listed.open_store()) as store:
        for n, ago in enumerate(days, start=1):
            assert signup.sign_up(config, store, f"r{n}@example.org", NOW - ago, None) == signup.SignUpOutcome.QUEUED
        for n in (1, 3):  # two confirmations: one in the last 7 days
            when = NOW - days[n - 1]
            token = subscribers.find(store, f"r{n}@example.org").token  # type: ignore[union-attr]
            expires = str(int((when + config.signup.window).timestamp()))  # type: ignore[union-attr]
            outcome = signup.confirm(config, store, token, expires, when + timedelta(hours=1), None)
            assert outcome == signup.ConfirmOutcome.CONFIRMED
        subscribers.add(store, [(f"x{n}@example.org", None) for n in range(1, 11)], NOW, resubscribe=False)
    run = listed.cli("run")  # 12 readers get the digest; 4 confirmations and 2 welcomes go: 18 sent
    assert run.exit_code == 0, run.output
    reported = [
        ("x1", MailEventKind.HARD_BOUNCE, 1),
        ("x2", MailEventKind.HARD_BOUNCE, 20),
        ("x3", MailEventKind.SOFT_BOUNCE, 3),
        ("x4", MailEventKind.COMPLAINT, 1),
        ("x5", MailEventKind.COMPLAINT, 25),
    ]
    with closing(listed.open_store()) as store:
        found = [
            MailEvent("postmark", f"e-{who}", kind, f"{who}@example.org", NOW - timedelta(days=ago))
            for who, kind, ago in reported
        ]
        record.record(store, found, config.bounces, NOW)

    shown = listed.cli("status")
    as_json = json.loads(listed.cli("status", "--json").stdout)

    lines = shown.stdout.splitlines()
    assert "subscribers: 8 active, 0 unsubscribed, 2 bounced, 2 complained, 2 pending" in lines
    assert "sign-ups: 2 in 7 days, 4 in 30; confirmed: 1 in 7 days, 2 in 30" in lines
    assert (
        "bounces: 7 d: 1 hard, 1 soft, 1 complaints of 18 sent (5.556% complaint rate); "
        "30 d: 2 hard, 1 soft, 2 complaints of 18 sent (11.111% complaint rate); the line is 0.3%"
    ) in lines
    assert "warning: complaint rate 11.11% over the last 30 days is over the 0.3% line" in shown.stdout
    assert as_json["signups"] == {"7d": {"signups": 2, "confirmations": 1}, "30d": {"signups": 4, "confirmations": 2}}
    assert as_json["bounces"] == {
        "line": 0.003,
        "windows": [
            {"days": 7, "sent": 18, "hard_bounce": 1, "soft_bounce": 1, "complaint": 1, "complaint_rate": 1 / 18},
            {"days": 30, "sent": 18, "hard_bounce": 2, "soft_bounce": 1, "complaint": 2, "complaint_rate": 2 / 18},
        ],
    }
    assert as_json["subscribers"] == {"active": 8, "bounced": 2, "complained": 2, "pending": 2}
    assert [p["kind"] for p in as_json["problems"]] == ["complaint_rate"]
