"""Bounce and complaint webhooks of ``publisher serve``, one provider at a time.

Each test runs the real app on uvicorn on 127.0.0.1 (``Running``) and posts what the provider
would: its documented payload, signed with keys made here (tests/bounce_payloads.py). Then it
reads the list and the ``mail_events`` table back from the store: a valid report suppresses the
address and is tied to the digest and batch it answers; a forged, stale or replayed one, or
one about an address not on the list, changes nothing, and the last two answer as a valid one.
"""

from __future__ import annotations

import email
import email.policy
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from publisher import journal, subscribers
from publisher.bounces import ses as ses_module
from publisher.bounces import webhooks
from publisher.errors import ConfigError
from publisher.store.suppressions import mail_events
from tests import bounce_payloads as payloads
from tests.bounce_payloads import Keys
from tests.conftest import NOW, Project, child_process, readline_within
from tests.test_server import TIMEOUT, Running, _free_port

SECRET = "unsubscribe-secret-9Qx4Lm2Vz7"
ADA, GRACE = "ada@example.org", "grace@example.net"
KEYS = Keys.make()


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """AWS stood in for: the SNS certificate URL answers the test's certificate; every URL
    fetched is noted."""
    seen: list[str] = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return KEYS.certificate if url == payloads.CERT_URL else b"<ConfirmSubscriptionResponse/>"

    monkeypatch.setattr(ses_module, "fetch", fetch)
    ses_module._certificate.cache_clear()
    yield seen
    ses_module._certificate.cache_clear()


@pytest.fixture
def listed(project: Project, monkeypatch: pytest.MonkeyPatch, at_now: datetime) -> Project:
    """A local list of ADA and GRACE, every provider's webhook set up, the clock at NOW."""
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("PUBLISHER_MAILGUN_WEBHOOK_KEY", payloads.MAILGUN_KEY)
    monkeypatch.setenv("PUBLISHER_POSTMARK_WEBHOOK_SECRET", payloads.POSTMARK_SECRET)
    monkeypatch.setenv("PUBLISHER_RESEND_WEBHOOK_SECRET", payloads.RESEND_SECRET)
    project.configure(
        digest={"recipients": "subscribers"},
        bounces={"ses_topics": [payloads.TOPIC], "sendgrid_public_key": KEYS.sendgrid_public, "soft_bounces": 3},
    )
    with closing(project.open_store()) as store:
        subscribers.add(store, [(ADA, None), (GRACE, None)], NOW, resubscribe=False)
    return project


@pytest.fixture
def sent(listed: Project) -> str:
    """The first digest sent to both (outbox): its one batch's key."""
    result = listed.cli("run")
    assert result.exit_code == 0, result.output
    with closing(listed.open_store()) as store:
        digest = store.last_digest()
        assert digest is not None
        [batch] = journal.batches_of(store, digest.id)
    return batch.key


@pytest.fixture
def client(listed: Project, fetched: list[str]) -> Iterator[httpx.Client]:
    with Running(listed.config()) as running, httpx.Client(base_url=running.url, timeout=TIMEOUT) as http:
        yield http


def post(client: httpx.Client, request: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
    path, body, headers = request
    return client.post(path, content=body, headers=headers)


def make(provider: str, kind: str, address: str, event_id: str, when: datetime = NOW, batch_key: str | None = None,
         **options: Any) -> tuple[str, bytes, dict[str, str]]:  # fmt: skip
    return payloads.MAKERS[provider](KEYS, kind, address, event_id, when, batch_key, **options)


def states(project: Project) -> dict[str, str]:
    with closing(project.open_store()) as store:
        return {s.email: s.state for s in subscribers.listing(store, include_unsubscribed=True)}


def events(project: Project) -> list[dict[str, Any]]:
    with closing(project.open_store()) as store, store.transaction() as conn:
        return [dict(row) for row in conn.execute(select(mail_events).order_by(mail_events.c.id)).mappings()]


ACTIVE = {ADA: "active", GRACE: "active"}


# -- each provider: valid, forged, replayed, stale, unknown ----------------------------------------


@pytest.mark.parametrize("provider", payloads.PROVIDERS)
def test_a_hard_bounce_suppresses_the_address_and_names_its_digest_and_batch(
    listed: Project, sent: str, client: httpx.Client, provider: str
) -> None:
    response = post(client, make(provider, "hard", ADA, f"{provider}-evt-1", batch_key=sent))

    assert (response.status_code, response.text) == (200, "ok")
    assert states(listed) == {ADA: "bounced", GRACE: "active"}
    [event] = events(listed)
    assert (event["provider"], event["kind"], event["email_key"]) == (provider, "hard_bounce", ADA)
    assert (event["digest_id"], event["batch_key"]) == (sent[:-5], sent)  # Resend: the newest batch to ADA


@pytest.mark.parametrize("provider", payloads.PROVIDERS)
def test_a_complaint_suppresses_the_address(listed: Project, client: httpx.Client, provider: str) -> None:
    response = post(client, make(provider, "complaint", GRACE, f"{provider}-evt-2"))

    assert response.status_code == 200
    assert states(listed) == {ADA: "active", GRACE: "complained"}
    assert [e["kind"] for e in events(listed)] == ["complaint"]


@pytest.mark.parametrize("provider", payloads.PROVIDERS)
def test_a_forged_event_changes_nothing(listed: Project, client: httpx.Client, provider: str) -> None:
    response = post(client, make(provider, "hard", ADA, f"{provider}-evt-3", forged=True))

    assert response.status_code == 403
    assert states(listed) == ACTIVE
    assert events(listed) == []


# Mailgun signs only its timestamp and token, Postmark nothing (a secret authenticates the
# sender): only the providers that sign the body can tell it was changed.
@pytest.mark.parametrize("provider", ["ses", "sendgrid", "resend"])
def test_a_tampered_body_changes_nothing(listed: Project, client: httpx.Client, provider: str) -> None:
    path, body, headers = make(provider, "hard", GRACE, f"{provider}-evt-4")
    tampered = body.replace(GRACE.encode(), ADA.encode())  # a valid signature over another body

    response = client.post(path, content=tampered, headers=headers)

    assert response.status_code == 403
    assert states(listed) == ACTIVE


@pytest.mark.parametrize("provider", payloads.PROVIDERS)
def test_a_replayed_event_is_recorded_once(listed: Project, client: httpx.Client, provider: str) -> None:
    request = make(provider, "soft", ADA, f"{provider}-evt-5")

    answers = [post(client, request) for _ in range(4)]  # were each counted, 3 would suppress ADA

    assert [(a.status_code, a.text) for a in answers] == [(200, "ok")] * 4
    assert len(events(listed)) == 1
    assert states(listed) == ACTIVE


@pytest.mark.parametrize("provider", [p for p in payloads.PROVIDERS if p != "postmark"])  # Postmark signs no time
def test_an_old_signed_event_is_refused(listed: Project, client: httpx.Client, provider: str) -> None:
    response = post(client, make(provider, "hard", ADA, f"{provider}-evt-6", when=NOW - timedelta(hours=1)))

    assert response.status_code == 403
    assert states(listed) == ACTIVE
    assert events(listed) == []


@pytest.mark.parametrize("provider", payloads.PROVIDERS)
def test_an_event_for_an_unknown_address_changes_nothing_and_answers_the_same(
    listed: Project, client: httpx.Client, provider: str
) -> None:
    known = post(client, make(provider, "soft", ADA, f"{provider}-evt-7"))
    unknown = post(client, make(provider, "hard", "stranger@example.com", f"{provider}-evt-8"))

    assert (unknown.status_code, unknown.text) == (known.status_code, known.text) == (200, "ok")
    assert dict(unknown.headers).keys() == dict(known.headers).keys()
    assert [e["email_key"] for e in events(listed)] == [ADA]
    assert states(listed) == ACTIVE


# -- soft bounces, the next digest -----------------------------------------------------------------


def test_soft_bounces_suppress_only_when_enough_fall_within_the_window(listed: Project, client: httpx.Client) -> None:
    old = NOW - timedelta(days=15)  # outside the default 14-day window
    post(client, make("ses", "soft", ADA, "old-1", when=NOW))  # SNS time: fresh; the bounce's own: below
    with closing(listed.open_store()) as store, store.transaction() as conn:
        conn.execute(mail_events.update().values(occurred_at=old))
    post(client, make("ses", "soft", ADA, "soft-2"))
    assert states(listed)[ADA] == "active"  # one old, one recent: 1 in the window

    post(client, make("ses", "soft", ADA, "soft-3"))
    assert states(listed)[ADA] == "active"
    post(client, make("ses", "soft", ADA, "soft-4"))

    assert states(listed)[ADA] == "bounced"  # the third soft bounce within 14 days
    assert [e["kind"] for e in events(listed)] == ["soft_bounce"] * 4


def test_a_suppressed_reader_gets_no_further_digest(listed: Project, sent: str, client: httpx.Client) -> None:
    assert post(client, make("mailgun", "hard", ADA, "mg-1", batch_key=sent)).status_code == 200
    folders = {p for p in listed.outbox.iterdir() if p.is_dir()}
    listed.add_article("second.md", "---\ntitle: Second story\n---\nA fresh paragraph for the second digest.\n")

    second = listed.cli("run")

    assert second.exit_code == 0, second.output
    [folder] = [p for p in listed.outbox.iterdir() if p.is_dir() and p not in folders]
    copies = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in folder.glob("*.eml")]
    assert [str(copy["To"]) for copy in copies] == [GRACE]
    body = copies[0].get_body(("plain",))
    assert body is not None and "Second story" in body.get_content()


# -- SNS specifics ---------------------------------------------------------------------------------


def test_an_sns_subscription_is_confirmed_by_fetching_its_url(
    listed: Project, client: httpx.Client, fetched: list[str]
) -> None:
    response = post(client, payloads.ses_subscription(KEYS, NOW))

    assert response.status_code == 200
    assert fetched == [payloads.CERT_URL, payloads.SUBSCRIBE_URL]


def test_sns_messages_from_another_topic_or_certificate_host_are_refused(
    listed: Project, client: httpx.Client, fetched: list[str]
) -> None:
    other_topic = "arn:aws:sns:us-east-1:999999999999:someone-elses"
    assert post(client, payloads.ses_subscription(KEYS, NOW, topic=other_topic)).status_code == 403
    assert post(client, make("ses", "hard", ADA, "t-1", topic=other_topic)).status_code == 403
    evil = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"
    assert post(client, make("ses", "hard", ADA, "t-2", cert_url=evil)).status_code == 403

    assert evil not in fetched and payloads.SUBSCRIBE_URL not in fetched
    assert states(listed) == ACTIVE


# -- limits ----------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_unread(listed: Project, client: httpx.Client) -> None:
    big = b"[" + b" " * webhooks.MAX_BODY + b"]"

    response = client.post("/webhooks/sendgrid", content=big, headers={"content-type": "application/json"})

    assert response.status_code == 413


def test_one_client_is_rate_limited(listed: Project, monkeypatch: pytest.MonkeyPatch, fetched: list[str]) -> None:
    monkeypatch.setattr(webhooks, "BURST", 5)
    monkeypatch.setattr(webhooks, "PER_MINUTE", 1)
    with Running(listed.config()) as running, httpx.Client(base_url=running.url, timeout=TIMEOUT) as http:
        answers = [
            post(http, make("postmark", "hard", f"nobody{n}@example.com", f"pm-{n}")).status_code for n in range(8)
        ]
    assert answers == [200] * 5 + [429] * 3


def test_a_provider_without_its_secret_has_no_endpoint(listed: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_POSTMARK_WEBHOOK_SECRET")
    with Running(listed.config()) as running, httpx.Client(base_url=running.url, timeout=TIMEOUT) as http:
        response = post(http, make("postmark", "hard", ADA, "pm-x"))
        missing = http.get("/webhooks/postmark")
    assert response.status_code == 405  # the feeds folder's answer to a POST: no such page here
    assert missing.status_code == 404
    assert states(listed) == ACTIVE


def test_a_malformed_payload_with_a_valid_signature_is_400(listed: Project, client: httpx.Client) -> None:
    path, _, headers = make("postmark", "hard", ADA, "pm-y")

    response = client.post(path, content=json.dumps({"not": "a record"}).encode(), headers=headers)

    assert response.status_code == 400
    assert states(listed) == ACTIVE


# -- settings --------------------------------------------------------------------------------------


def test_a_bad_topic_or_key_is_one_line_naming_the_setting(listed: Project) -> None:
    with pytest.raises(ConfigError):  # the file is written, then refused on loading
        listed.configure(bounces={"ses_topics": ["not-an-arn"]})
    checked = listed.cli("config", "check")
    assert checked.exit_code == 2
    assert "[bounces] ses_topics: not an SNS topic ARN: 'not-an-arn'" in checked.output

    listed.configure(bounces={"ses_topics": [], "sendgrid_public_key": "bm90IGEga2V5"})
    with pytest.raises(ConfigError, match=r"\[bounces\] sendgrid_public_key: not a base64 public key"):
        Running(listed.config())


# -- the command -----------------------------------------------------------------------------------


def test_the_serve_process_takes_webhooks_and_keeps_secrets_out_of_its_log(listed: Project, tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "publisher", "--config", str(listed.config_path), "serve", "--port", str(port)]
    stderr_path = tmp_path / "serve-stderr.log"
    with child_process(command, cwd=listed.root, stderr=stderr_path) as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
        assert line.startswith(f"serve: http://127.0.0.1:{port}/"), line + stderr_path.read_text()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as http:
            forged = post(http, make("postmark", "complaint", GRACE, "pm-p1", forged=True))
            taken = post(http, make("postmark", "complaint", GRACE, "pm-p2"))
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)

    assert (forged.status_code, taken.status_code, process.returncode) == (403, 200, 0)
    log = stderr_path.read_text()
    assert '"POST /webhooks/postmark HTTP/1.1" 403' in log and '"POST /webhooks/postmark HTTP/1.1" 200' in log
    assert "bounces: postmark webhook refused from 127.0.0.1: Postmark webhook secret does not match" in log
    for secret in (payloads.POSTMARK_SECRET, payloads.MAILGUN_KEY, payloads.RESEND_SECRET, GRACE):
        assert secret not in log
    assert states(listed) == {ADA: "active", GRACE: "complained"}


def test_serve_with_a_bad_resend_secret_is_one_error_line(listed: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_RESEND_WEBHOOK_SECRET", "whsec_")

    result = listed.cli("serve", "--port", "0")

    assert result.exit_code == 2
    assert result.stderr == (
        "publisher: error: publisher.toml: [bounces] resend_secret_env: environment variable "
        "PUBLISHER_RESEND_WEBHOOK_SECRET: not a Svix signing secret (whsec_...)\n"
    )
