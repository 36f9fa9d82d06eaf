"""`publisher subscribers sync-suppressions` against fakes of each provider's suppression list
API on 127.0.0.1, and the complaint-rate watch of `publisher status`.
"""

from __future__ import annotations

import base64
import json
from contextlib import closing
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from publisher import subscribers
from publisher.store.suppressions import mail_events
from tests.conftest import NOW, Project
from tests.endpoint import Answer, Endpoint, Request

KEY = "sync-key-5Gx2Rt8Pq1Lz7Wm4"
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": "unsubscribe-secret-0123456789"}
ADA, GRACE, LINUS = "ada@example.org", "grace@example.net", "linus@example.com"


@pytest.fixture
def listed(project: Project, at_now: datetime) -> Project:
    project.configure(digest={"recipients": "subscribers"})
    with closing(project.open_store()) as store:
        subscribers.add(store, [(ADA, None), (GRACE, None), (LINUS, None)], NOW, resubscribe=False)
    return project


def states(project: Project) -> dict[str, str]:
    with closing(project.open_store()) as store:
        return {s.email: s.state for s in subscribers.listing(store, include_unsubscribed=True)}


def event_count(project: Project) -> int:
    with closing(project.open_store()) as store, store.transaction() as conn:
        return len(conn.execute(select(mail_events.c.id)).all())


def sync_twice(project: Project) -> tuple[str, str]:
    first = project.cli("subscribers", "sync-suppressions", env=ENV)
    assert first.exit_code == 0, first.output
    second = project.cli("subscribers", "sync-suppressions", env=ENV)
    assert second.exit_code == 0, second.output
    return first.output.strip(), second.output.strip()


SUPPRESSED = {ADA: "bounced", GRACE: "complained", LINUS: "active"}


def test_postmark_suppression_dump(listed: Project, endpoint: Endpoint) -> None:
    def handle(request: Request) -> Answer:
        assert request.headers["x-postmark-server-token"] == KEY
        assert (request.method, request.route) == ("GET", "/message-streams/broadcast/suppressions/dump")
        entries = [
            (ADA, "HardBounce"),
            (GRACE, "SpamComplaint"),
            (LINUS, "ManualSuppression"),  # the reader's own unsubscribe at Postmark: left alone
            ("stranger@example.com", "HardBounce"),
        ]
        dump = [
            {"EmailAddress": a, "SuppressionReason": r, "Origin": "Recipient", "CreatedAt": "2026-11-20T10:00:00-05:00"}
            for a, r in entries
        ]
        return 200, {"Suppressions": dump}, {}

    endpoint.handler = handle
    listed.configure(mailer={"provider": "postmark", "url": endpoint.url, "retries": 0})

    first, second = sync_twice(listed)

    assert first == "suppressions: 3 on postmark's list, 2 suppressed here now"
    assert second == "suppressions: 3 on postmark's list, 0 suppressed here now"
    assert states(listed) == SUPPRESSED
    assert event_count(listed) == 2


def test_sendgrid_suppression_lists_page_by_page(listed: Project, endpoint: Endpoint) -> None:
    lists = {
        "bounces": [{"email": ADA, "created": 1763900000, "reason": "550 5.1.1", "status": "5.1.1"}]
        + [
            {"email": f"gone{n}@example.com", "created": 1763900000, "reason": "550", "status": "5.1.1"}
            for n in range(600)
        ],
        "invalid_emails": [],
        "spam_reports": [{"email": GRACE, "created": 1763900000, "ip": "10.63.202.100"}],
    }

    def handle(request: Request) -> Answer:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        name = request.route.removeprefix("/v3/suppression/")
        query = dict(request.query)
        offset, limit = int(query["offset"]), int(query["limit"])
        return 200, lists[name][offset : offset + limit], {}

    endpoint.handler = handle
    listed.configure(mailer={"provider": "sendgrid", "url": endpoint.url, "retries": 0})

    first, _ = sync_twice(listed)

    assert first == "suppressions: 602 on sendgrid's list, 2 suppressed here now"
    assert states(listed) == SUPPRESSED
    routes = [(r.route, dict(r.query)["offset"]) for r in endpoint.requests[:4]]
    assert routes == [
        ("/v3/suppression/bounces", "0"),
        ("/v3/suppression/bounces", "500"),
        ("/v3/suppression/invalid_emails", "0"),
        ("/v3/suppression/spam_reports", "0"),
    ]


def test_mailgun_bounces_and_complaints_follow_paging_on_its_own_host_only(listed: Project, endpoint: Endpoint) -> None:
    base = f"{endpoint.url}/v3/mg.example.org"

    def handle(request: Request) -> Answer:
        expected = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
        assert request.headers["authorization"] == expected
        query = dict(parse_qsl(urlsplit(request.path).query))
        created = "Fri, 20 Nov 2026 11:02:55 UTC"
        if request.route.endswith("/bounces"):
            if query.get("page") == "next":
                return 200, {"items": [], "paging": {"next": f"{base}/bounces?page=next&address=z"}}, {}
            items = [{"address": ADA, "code": "550", "error": "No such mailbox", "created_at": created}]
            return 200, {"items": items, "paging": {"next": f"{base}/bounces?page=next&address={ADA}"}}, {}
        items = [{"address": GRACE, "created_at": created}]
        return 200, {"items": items, "paging": {"next": "https://elsewhere.example/v3/steal?key"}}, {}

    endpoint.handler = handle
    listed.configure(mailer={"provider": "mailgun", "url": endpoint.url, "domain": "mg.example.org", "retries": 0})

    first, _ = sync_twice(listed)

    assert first == "suppressions: 2 on mailgun's list, 2 suppressed here now"
    assert states(listed) == SUPPRESSED
    assert [r.route for r in endpoint.requests[:3]] == [
        "/v3/mg.example.org/bounces",
        "/v3/mg.example.org/bounces",
        "/v3/mg.example.org/complaints",
    ]


def test_a_provider_without_a_suppression_list_is_one_line(listed: Project) -> None:
    result = listed.cli("subscribers", "sync-suppressions", env=ENV)

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "publisher: error: publisher.toml: [mailer] provider: outbox has no suppression list publisher can read "
        "(it can: postmark, sendgrid, mailgun, ses)"
    ]


def test_an_unreachable_api_is_one_line_without_the_key(listed: Project, refused_url: str) -> None:
    listed.configure(mailer={"provider": "postmark", "url": refused_url, "retries": 0})

    result = listed.cli("subscribers", "sync-suppressions", env=ENV)

    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1
    assert "cannot connect" in result.output and KEY not in result.output
    assert states(listed) == {ADA: "active", GRACE: "active", LINUS: "active"}


# -- the complaint-rate watch ----------------------------------------------------------------------


def test_status_shows_bounces_and_warns_over_the_complaint_line(listed: Project, endpoint: Endpoint) -> None:
    sent = listed.cli("run", env=ENV)  # outbox: 3 readers
    assert sent.exit_code == 0, sent.output
    quiet = listed.cli("status", env=ENV)
    assert "bounces: 7 d: 0 hard, 0 soft, 0 complaints of 3 sent (0.000% complaint rate)" in quiet.output
    assert "warning" not in quiet.output
    complaint = {"EmailAddress": GRACE, "SuppressionReason": "SpamComplaint", "CreatedAt": NOW.isoformat()}
    endpoint.handler = lambda request: (200, {"Suppressions": [complaint]}, {})
    listed.configure(mailer={"provider": "postmark", "url": endpoint.url, "retries": 0})
    assert listed.cli("subscribers", "sync-suppressions", env=ENV).exit_code == 0

    shown = listed.cli("status", env=ENV)
    checked = listed.cli("status", "--check", env=ENV)
    as_json = json.loads(listed.cli("status", "--json", env=ENV).output)

    assert "bounces: 7 d: 0 hard, 0 soft, 1 complaints of 3 sent (33.333% complaint rate)" in shown.output
    assert "subscribers: 2 active, 0 unsubscribed, 1 complained" in shown.output
    assert "warning: complaint rate 33.33% over the last 7 days is over the 0.3% line" in shown.output
    assert checked.exit_code == 1 and "complaint rate" in checked.output
    assert as_json["bounces"]["line"] == 0.003
    [week, month] = as_json["bounces"]["windows"]
    assert (week["days"], week["sent"], week["complaint"], week["hard_bounce"]) == (7, 3, 1, 0)
    assert month["days"] == 30
    assert [p["kind"] for p in as_json["problems"]] == ["complaint_rate"]


def test_ses_suppressed_destinations_follow_next_token(listed: Project, endpoint: Endpoint) -> None:
    pages = {
        None: {
            "SuppressedDestinationSummaries": [
                {"EmailAddress": ADA, "Reason": "BOUNCE", "LastUpdateTime": 1763900000.0},
            ],
            "NextToken": "page-2",
        },
        "page-2": {"SuppressedDestinationSummaries": [{"EmailAddress": GRACE, "Reason": "COMPLAINT"}]},
    }

    def handle(request: Request) -> Answer:
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLESYNC/")
        assert request.route == "/v2/email/suppression/addresses"
        return 200, pages[dict(request.query).get("NextToken")], {}

    endpoint.handler = handle
    listed.configure(mailer={"provider": "ses", "url": endpoint.url, "region": "eu-west-1", "retries": 0})
    aws = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLESYNC", "AWS_SECRET_ACCESS_KEY": "aws-secret-sync-0123456789"}

    result = listed.cli("subscribers", "sync-suppressions", env=ENV | aws)

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "suppressions: 2 on ses's list, 2 suppressed here now"
    assert states(listed) == SUPPRESSED
