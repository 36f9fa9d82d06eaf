"""The suppressions SQL on both stores: one event kept once, strangers never written, soft
bounces counted within their window, the batch an event answers found."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from publisher import journal, subscribers
from publisher.bounces.events import MailEvent
from publisher.bounces.record import record
from publisher.config import BouncesConfig
from publisher.states import MailEventKind
from publisher.store import Store
from publisher.store.suppressions import Outcome, mail_events
from tests.conftest import NOW

ADA, GRACE = "ada@example.org", "grace@example.net"
SETTINGS = BouncesConfig(soft_bounces=2, soft_window=timedelta(days=7))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = Store.open(url)
    subscribers.add(opened, [(ADA, None), (GRACE, None)], NOW, resubscribe=False)
    try:
        yield opened
    finally:
        opened.close()


def event(kind: MailEventKind, address: str, event_id: str, days_ago: int = 0, **ids: str) -> MailEvent:
    return MailEvent("ses", event_id, kind, address, NOW - timedelta(days=days_ago), **ids)


def test_events_are_kept_once_and_only_for_the_list(store: Store) -> None:
    soft = MailEventKind.SOFT_BOUNCE
    outcomes = record(
        store,
        [
            event(soft, ADA, "e1", days_ago=9),  # outside the 7-day window
            event(soft, ADA, "e2", days_ago=1),
            event(soft, ADA, "e2", days_ago=1),  # a replay
            event(MailEventKind.HARD_BOUNCE, "Stranger@Example.com", "e3"),
            event(MailEventKind.COMPLAINT, "GRACE@example.net", "e4"),
        ],
        SETTINGS,
        NOW,
    )
    assert outcomes == [Outcome.RECORDED, Outcome.RECORDED, Outcome.REPLAY, Outcome.UNKNOWN, Outcome.SUPPRESSED]
    assert subscribers.find(store, ADA).state == "active"  # type: ignore[union-attr]

    [last] = record(store, [event(soft, ADA, "e5")], SETTINGS, NOW)  # the second within 7 days

    assert last == Outcome.SUPPRESSED
    states = {s.email: s.state for s in subscribers.listing(store, include_unsubscribed=True)}
    assert states == {ADA: "bounced", GRACE: "complained"}
    with store.transaction() as conn:
        kept = conn.execute(select(mail_events.c.event_id, mail_events.c.email_key).order_by(mail_events.c.id)).all()
    assert [tuple(row) for row in kept] == [("e1", ADA), ("e2", ADA), ("e4", GRACE), ("e5", ADA)]


def test_an_event_names_the_batch_it_answers(store: Store) -> None:
    store.create_digest("20261124-063000-0000abcd", NOW, "Subject", b"message", [])
    journal.plan_subscribers(store, "20261124-063000-0000abcd", 1, NOW)  # one reader a batch
    keys = {b.number: b.key for b in journal.batches_of(store, "20261124-063000-0000abcd")}

    record(
        store,
        [
            event(MailEventKind.HARD_BOUNCE, ADA, "echoed", batch_key=keys[1]),
            event(MailEventKind.HARD_BOUNCE, GRACE, "not-echoed", batch_key="no-such-batch"),
        ],
        SETTINGS,
        NOW,
    )

    with store.transaction() as conn:
        rows = conn.execute(select(mail_events.c.email_key, mail_events.c.digest_id, mail_events.c.batch_key)).all()
    tied = {row.email_key: (row.digest_id, row.batch_key) for row in rows}
    assert tied == {ADA: ("20261124-063000-0000abcd", keys[1]), GRACE: ("20261124-063000-0000abcd", keys[2])}


def test_an_import_keeps_suppressed_addresses_out_and_the_operator_can_add_one_back(store: Store) -> None:
    record(store, [event(MailEventKind.HARD_BOUNCE, ADA, "h1")], SETTINGS, NOW)

    imported = subscribers.add(store, [(ADA, None)], NOW, resubscribe=False)
    assert (imported.kept_unsubscribed, imported.added) == (1, 0)
    assert subscribers.find(store, ADA).state == "bounced"  # type: ignore[union-attr]

    by_hand = subscribers.add(store, [(ADA, None)], NOW, resubscribe=True)  # `publisher subscribers add`
    assert by_hand.resubscribed == 1
    assert subscribers.find(store, ADA).state == "active"  # type: ignore[union-attr]
