"""The delivery journal: batches planned before the first request, each state committed before
the next step, a stopped send continued with only what was not accepted, and nothing sent twice
by a provider that cannot dedupe.

These drive the real CLI against a recording HTTP server on 127.0.0.1 (tests/endpoint.py) and
read the journal back from the store.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from publisher import clock, journal, subscribers
from publisher import digest as digest_module
from publisher.schema import batches as batches_table
from publisher.schema import digests as digests_table
from publisher.store import Digest, Store
from tests.conftest import NOW, Project
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, last_digest, read_journal, subscribe
from tests.endpoint import Answer, Endpoint, Request
from tests.fakes.mailgun import form_of

KEY = "mk_9Tb4Lq2Wx7Rv3Np5"
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
READERS = [f"reader{n}@example.net" for n in range(1, 6)]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def local_list(project: Project, provider: str, url: str, *, batch_size: int = 2, **mailer: Any) -> None:
    """Five local subscribers, sent in batches of ``batch_size``."""
    settings: dict[str, Any] = {"provider": provider, "url": url, "retries": 0, "timeout": 5, "batch_size": batch_size}
    if provider == "mailgun":
        settings["domain"] = "mg.example.org"
    project.configure(mailer=settings | mailer)
    subscribe(project, READERS)


def webhook_recipients(request: Request) -> list[str]:
    return [r["email"] for r in request.json()["recipients"]]


def mailgun_recipients(request: Request) -> list[str]:
    return [value for name, value in form_of(request) if name == "to"]


def test_every_recipient_is_written_before_the_first_request(project: Project, endpoint: Endpoint) -> None:
    local_list(project, "webhook", endpoint.url)
    seen_by_first_request: list[list[tuple[int, str, int]]] = []

    def look_at_the_store(request: Request) -> Answer:
        if not seen_by_first_request:
            _, planned = read_journal(project)
            seen_by_first_request.append([(b.number, b.state, b.recipient_count) for b in planned])
        return 200, {"id": f"msg-{len(endpoint.requests)}"}, {}

    endpoint.handler = look_at_the_store

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    # While batch 1 was in flight, all three batches and their recipients were in the store.
    assert seen_by_first_request == [[(1, "sending", 2), (2, "pending", 2), (3, "pending", 1)]]
    digest, planned = read_journal(project)
    assert [(b.state, b.provider_id) for b in planned] == [
        ("accepted", "msg-1"),
        ("accepted", "msg-2"),
        ("accepted", "msg-3"),
    ]
    assert digest.state == "sent"
    assert "3 batches accepted, 5 recipients" in result.stdout
    sent = [address for request in endpoint.requests for address in webhook_recipients(request)]
    assert sorted(sent) == sorted(READERS)


def test_a_stopped_send_continues_with_only_the_batches_not_accepted(project: Project, endpoint: Endpoint) -> None:
    local_list(project, "webhook", endpoint.url)
    endpoint.reply(200, {"id": "first"})
    endpoint.reply(503, {"message": "Service Unavailable"})

    stopped = project.cli("run", env=ENV)

    assert stopped.exit_code == 1
    assert "1 of 3 batches accepted so far" in stopped.stderr
    assert "not sent, will retry on the next run" in stopped.stderr
    digest, planned = read_journal(project)
    assert digest.state == "pending"
    assert [b.state for b in planned] == ["accepted", "pending", "pending"]
    assert planned[1].last_error is not None and "HTTP 503: Service Unavailable" in planned[1].last_error
    assert len(endpoint.requests) == 2  # batch 3 was not tried after batch 2's passing failure

    continued = project.cli("run", env=ENV)

    assert continued.exit_code == 0, continued.output
    keys = [request.headers["idempotency-key"] for request in endpoint.requests]
    assert keys == [f"{digest.id}-0001", f"{digest.id}-0002", f"{digest.id}-0002", f"{digest.id}-0003"]
    delivered = Counter(
        address for request in (endpoint.requests[0], *endpoint.requests[2:]) for address in webhook_recipients(request)
    )
    assert delivered == Counter(READERS)  # each reader exactly once among the accepted requests
    digest, planned = read_journal(project)
    assert digest.state == "sent"
    assert [b.attempts for b in planned] == [1, 2, 1]


class Hold:
    """A handler that keeps the response back until the test lets go: the client times out."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, request: Request) -> Answer:
        self.release.wait(timeout=30)
        return 200, {"id": "too-late"}, {}


@pytest.fixture
def hold(endpoint: Endpoint) -> Iterator[Hold]:
    holding = Hold()
    endpoint.handler = holding
    yield holding
    holding.release.set()


def test_a_timeout_with_a_provider_that_cannot_dedupe_is_in_doubt_and_not_resent(
    project: Project, endpoint: Endpoint, hold: Hold
) -> None:
    local_list(project, "mailgun", endpoint.url, batch_size=5, timeout=0.5, retries=2)

    result = project.cli("run", env=ENV)
    hold.release.set()

    assert result.exit_code == 1
    assert len(endpoint.requests) == 1  # not retried within the run: Mailgun may have it
    assert "1 batch in doubt" in result.stderr and "--resend-in-doubt" in result.stderr
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "in_doubt")
    assert batch.last_error is not None and "no answer within 0.5s" in batch.last_error
    assert KEY not in result.output

    endpoint.handler = None
    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # it still needs the operator, and says so
    assert "--resend-in-doubt" in again.stderr
    assert len(endpoint.requests) == 1  # the next run leaves it alone

    resent = project.cli("digest", "resume", "--resend-in-doubt", env=ENV)

    assert resent.exit_code == 0, resent.output
    first, second = endpoint.requests
    assert mailgun_recipients(first) == mailgun_recipients(second) == READERS
    assert first.body == second.body
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state, batch.attempts) == ("sent", "accepted", 1)  # counted afresh once reopened


def test_a_timeout_with_a_provider_that_dedupes_is_retried_with_the_same_key(
    project: Project, endpoint: Endpoint, hold: Hold
) -> None:
    local_list(project, "webhook", endpoint.url, batch_size=5, timeout=0.5)

    result = project.cli("run", env=ENV)
    hold.release.set()

    assert result.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("pending", "pending")

    endpoint.handler = None
    assert project.cli("run", env=ENV).exit_code == 0
    first, second = endpoint.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == f"{digest.id}-0001"
    assert first.body == second.body


def _crash_in_the_middle_of_batch(project: Project, number: int) -> Digest:
    """Leave the store as a process killed while sending batch ``number`` would: digest and
    batch ``sending``, earlier batches accepted, and the lease long run out."""
    store = project.open_store()
    try:
        assert project.cli("ingest", str(project.articles)).exit_code == 0
        config = project.config()
        created = digest_module.create_next(config, store, NOW)
        assert created is not None
        audience = [(s.email, s.id) for s in subscribers.listing(store)]
        journal.plan(store, created.id, audience, 2, NOW)
        long_ago = NOW - timedelta(days=1)
        with store.transaction() as conn:
            conn.execute(
                update(digests_table)
                .where(digests_table.c.id == created.id)
                .values(state="sending", claimed_at=long_ago, attempts=1)
            )
            conn.execute(
                update(batches_table)
                .where(batches_table.c.digest_id == created.id, batches_table.c.number < number)
                .values(state="accepted", attempts=1)
            )
            conn.execute(
                update(batches_table)
                .where(batches_table.c.digest_id == created.id, batches_table.c.number == number)
                .values(state="sending", attempts=1, updated_at=long_ago)
            )
        return created
    finally:
        store.close()


def test_after_a_crash_an_idempotent_provider_gets_the_interrupted_batch_again_with_its_key(
    project: Project, endpoint: Endpoint
) -> None:
    local_list(project, "webhook", endpoint.url)
    crashed = _crash_in_the_middle_of_batch(project, 2)

    result = project.cli("digest", "resume", env=ENV)

    assert result.exit_code == 0, result.output
    assert [r.headers["idempotency-key"] for r in endpoint.requests] == [f"{crashed.id}-0002", f"{crashed.id}-0003"]
    assert sorted(a for r in endpoint.requests for a in webhook_recipients(r)) == sorted(READERS[2:])
    digest, planned = read_journal(project)
    assert digest.state == "sent"
    assert [b.state for b in planned] == ["accepted"] * 3


def test_after_a_crash_a_provider_that_cannot_dedupe_holds_the_interrupted_batch(
    project: Project, endpoint: Endpoint
) -> None:
    local_list(project, "mailgun", endpoint.url)
    crashed = _crash_in_the_middle_of_batch(project, 2)

    result = project.cli("digest", "resume", env=ENV)

    assert result.exit_code == 1
    [request] = endpoint.requests  # only batch 3: batch 2 may have been delivered
    assert mailgun_recipients(request) == READERS[4:]
    digest, planned = read_journal(project)
    assert [b.state for b in planned] == ["accepted", "in_doubt", "accepted"]
    assert digest.state == "incomplete"
    assert f"digest {crashed.id}" in result.stderr and "1 batch in doubt" in result.stderr

    resent = project.cli("digest", "resume", "--resend-in-doubt", env=ENV)

    assert resent.exit_code == 0, resent.output
    assert mailgun_recipients(endpoint.requests[1]) == READERS[2:4]
    assert last_digest(project).state == "sent"


def test_a_digest_being_sent_by_a_live_process_is_left_alone(project: Project, endpoint: Endpoint) -> None:
    local_list(project, "webhook", endpoint.url)
    crashed = _crash_in_the_middle_of_batch(project, 1)
    store = project.open_store()
    try:
        with store.transaction() as conn:  # the lease is fresh: its sender is alive
            conn.execute(update(digests_table).where(digests_table.c.id == crashed.id).values(claimed_at=clock.now()))
    finally:
        store.close()

    result = project.cli("digest", "send", env=ENV)

    assert result.exit_code == 0, result.output
    assert "being sent by another process" in result.stdout
    assert endpoint.requests == []


def test_a_reader_who_unsubscribes_during_a_send_gets_no_batch_that_was_not_tried_yet(
    project: Project, endpoint: Endpoint
) -> None:
    local_list(project, "webhook", endpoint.url)
    endpoint.reply(200, {"id": "first"})
    endpoint.reply(503, {"message": "busy"})
    assert project.cli("run", env=ENV).exit_code == 1  # batch 1 accepted, batch 2 tried, batch 3 waits
    store = project.open_store()
    try:
        assert subscribers.remove(store, READERS[2], NOW)  # in batch 2
        assert subscribers.remove(store, READERS[4], NOW)  # alone in batch 3
    finally:
        store.close()

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    # Batch 2 goes again as it went the first time (same key, same body: a provider that
    # dedupes must recognise it); batch 3 was never tried, so it goes to nobody.
    assert len(endpoint.requests) == 3
    assert endpoint.requests[2].body == endpoint.requests[1].body
    assert webhook_recipients(endpoint.requests[2]) == READERS[2:4]
    digest, planned = read_journal(project)
    assert (digest.state, [b.state for b in planned]) == ("sent", ["accepted"] * 3)
    assert planned[2].last_error == "no recipients"


def test_a_local_list_with_nobody_on_it_keeps_the_articles_for_later(project: Project, endpoint: Endpoint) -> None:
    local_list(project, "webhook", endpoint.url)
    store = project.open_store()
    try:
        for address in READERS:
            assert subscribers.remove(store, address, NOW)
    finally:
        store.close()

    nobody = project.cli("run", env=ENV)

    assert nobody.exit_code == 0, nobody.output
    assert "no active subscribers" in nobody.stdout
    assert endpoint.requests == []
    store = project.open_store()
    try:
        assert store.last_digest() is None  # no digest used up the articles on nobody
        subscribers.add(store, [("late@example.net", None)], NOW, resubscribe=False)
    finally:
        store.close()

    later = project.cli("run", env=ENV)

    assert later.exit_code == 0, later.output
    [request] = endpoint.requests
    assert webhook_recipients(request) == ["late@example.net"]
    assert len(request.json()["articles"]) == 1


def test_planning_twice_changes_nothing(tmp_path: Any) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert store.create_digest("d1", NOW, "subject", b"message", [])
        assert journal.plan(store, "d1", [("a@example.net", None), ("A@example.net", None)], 10, NOW)
        assert not journal.plan(store, "d1", [("b@example.net", None)], 10, NOW)
        [batch] = journal.batches_of(store, "d1")
        assert batch.recipient_count == 1  # the same address twice, in any case, is one recipient
        assert [p.email for p in journal.recipients(store, batch.id)] == ["a@example.net"]
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Store.open(url)
    try:
        yield store
    finally:
        store.close()


def test_the_local_list_is_planned_in_the_database_by_address_without_who_unsubscribed(any_store: Store) -> None:
    store = any_store
    # Added out of order, in mixed case: batches follow the addresses, case ignored.
    added = ["Cy@example.net", "al@example.net", "ed@example.net", "Bo@example.net", "di@example.net"]
    added += ["fay@example.net", "gil@example.net"]
    subscribers.add(store, [(address, None) for address in added], NOW, resubscribe=False)
    subscribers.remove(store, "di@example.net", NOW)
    tokens = {s.email: s.token for s in subscribers.listing(store)}
    assert store.create_digest("d1", NOW, "subject", b"message", [])

    assert journal.plan_subscribers(store, "d1", 2, NOW)
    assert not journal.plan_subscribers(store, "d1", 2, NOW)  # planned once only

    planned = journal.batches_of(store, "d1")
    assert [(b.number, b.key, b.state, b.recipient_count, b.attempts) for b in planned] == [
        (1, "d1-0001", "pending", 2, 0),
        (2, "d1-0002", "pending", 2, 0),
        (3, "d1-0003", "pending", 2, 0),
    ]
    people = [[(p.email, p.token) for p in journal.recipients(store, b.id)] for b in planned]
    assert people == [
        [("al@example.net", tokens["al@example.net"]), ("Bo@example.net", tokens["Bo@example.net"])],
        [("Cy@example.net", tokens["Cy@example.net"]), ("ed@example.net", tokens["ed@example.net"])],
        [("fay@example.net", tokens["fay@example.net"]), ("gil@example.net", tokens["gil@example.net"])],
    ]


def test_an_empty_local_list_is_planned_as_one_empty_batch(tmp_path: Any) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        subscribers.add(store, [("gone@example.net", None)], NOW, resubscribe=False)
        subscribers.remove(store, "gone@example.net", NOW)
        assert store.create_digest("d1", NOW, "subject", b"message", [])
        assert journal.plan_subscribers(store, "d1", 1000, NOW)
        [batch] = journal.batches_of(store, "d1")
        assert (batch.key, batch.recipient_count) == ("d1-0001", 0)
        assert journal.recipients(store, batch.id) == []
    finally:
        store.close()
