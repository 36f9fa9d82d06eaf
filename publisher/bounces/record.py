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
    outcomes = []
    with store.transaction() as conn:
        for event in events:
            outcome = suppressions.record(
                conn,
                provider=event.provider,
                event_id=event.event_id,
                email_key=subscribers.key(event.address),
                kind=event.kind,
                occurred_at=event.occurred_at,
                digest_id=event.digest_id,
                batch_key=event.batch_key,
                detail=event.detail,
                now=now,
                soft_limit=settings.soft_bounces,
                soft_since=now - settings.soft_window,
            )
            outcomes.append(outcome)
    for event, outcome in zip(events, outcomes, strict=True):
        if outcome == Outcome.SUPPRESSED:  # no address in the log: it is a reader's personal data
            logger.info("bounces: %s reported a %s: one address suppressed", event.provider, event.kind)
    return outcomes
