"""MailEvents into the store: the list cleans itself (SQL in publisher.store.suppressions)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from publisher import subscribers
from publisher.bounces.events import MailEvent
from publisher.config import BouncesConfig
from publisher.store import Store, suppressions
from publisher.store.suppressions import Outcome

logger = logging.getLogger(__name__)


def record(store: Store, events: Sequence[MailEvent], settings: BouncesConfig, now: datetime) -> list[Outcome]:
    """Keep each event (once) and suppress the addresses they call for, in one transaction."""
    rows = [
        suppressions.NewEvent(
            provider=e.provider,
            event_id=e.event_id,
            email_key=subscribers.key(e.address),
            kind=e.kind,
            occurred_at=e.occurred_at,
            digest_id=e.digest_id,
            batch_key=e.batch_key,
            detail=e.detail,
        )
        for e in events
    ]
    with store.transaction() as conn:
        outcomes = suppressions.record(
            conn, rows, now=now, soft_limit=settings.soft_bounces, soft_since=now - settings.soft_window
        )
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome == Outcome.SUPPRESSED:  # no address in the log: it is a reader's personal data
            logger.info("bounces: %s reported a %s: one address suppressed", event.provider, event.kind)
    return outcomes
