"""``publisher status`` as data: what it shows and the operator's advice, decided here.

:mod:`publisher.health` gathers the facts from the store; this module decides what of them the
operator sees and what they are told to do (which batch states are counted, whether the
recipients are the provider's own list, which flags settle a digest). The CLI only turns
a :class:`StatusReport` into lines, or prints :meth:`StatusReport.as_json` / the problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from publisher import health, journal
from publisher.config import LIST_OWNERS, Config
from publisher.states import BatchState, DigestState, SubscriberState
from publisher.store import Digest

COUNTED = (BatchState.ACCEPTED, BatchState.FAILED, BatchState.IN_DOUBT, BatchState.PENDING)  # always shown


class Advice(StrEnum):
    """What the operator can do about a digest that did not all go out."""

    CHECK_IN_DOUBT = "check_in_doubt"  # look in the provider's log; resend with --resend-in-doubt if not there
    RETRY_FAILED = "retry_failed"  # fix the cause, then --retry-failed
    CLOSE = "close"  # or leave it as it is: `digest close`


@dataclass(frozen=True)
class DigestReport:
    """A digest's batches by state, who they reached, and what to do about the rest."""

    digest: Digest
    provider: str
    counts: list[tuple[BatchState, int]]  # the states shown, in order; empty: no batches recorded
    provider_list: bool  # the recipients are the provider's own list: no count of them
    recipients: int
    reached: int
    refused: int  # by the provider, one by one, in accepted batches
    unfinished: list[journal.Batch]  # failed, then in doubt
    in_doubt_keys: list[str]  # to look for in the provider's log
    advice: list[Advice]


@dataclass(frozen=True)
class LastDigest:
    digest: Digest
    sent_at: datetime | None  # when it went out (state sent)
    tried_at: datetime | None  # when it was last tried, not sent
    attempts: int | None  # shown while not sent


@dataclass(frozen=True)
class Upcoming:
    """One digest's next slot, where a site has several."""

    name: str
    at: datetime | None
    schedule: str
    timezone: str


@dataclass(frozen=True)
class StatusReport:
    facts: health.Status
    schedule: str
    timezone: str
    active: int | None  # subscribers; None: no local list
    unsubscribed: int
    pending: int  # signed up, not confirmed yet
    last: LastDigest | None
    digests: list[DigestReport]
    upcoming: list[Upcoming] = field(default_factory=list)  # with several digests: each one's next slot

    @property
    def problems(self) -> list[health.Problem]:
        """What needs the operator: ``status --check`` prints these and exits 1."""
        return self.facts.problems


def status(config: Config, when: datetime) -> StatusReport:
    """Everything ``publisher status`` shows."""
    facts = health.status(config, when)
    listed = facts.subscribers
    return StatusReport(
        facts=facts,
        schedule=config.digest.schedule,
        timezone=config.digest.timezone.key,
        active=None if listed is None else listed.get(SubscriberState.ACTIVE, 0),
        unsubscribed=0 if listed is None else listed.get(SubscriberState.UNSUBSCRIBED, 0),
        pending=0 if listed is None else listed.get(SubscriberState.PENDING, 0),
        last=_last(facts.digests[0].digest) if facts.digests else None,
        digests=[digest_report(config, d) for d in facts.digests],
        upcoming=upcoming(config, when) if len(config.digests) > 1 else [],
    )


def upcoming(config: Config, when: datetime) -> list[Upcoming]:
    """Each digest's next slot after ``when``, in the file's order."""
    from publisher.scheduler import next_digest_time  # apscheduler: only when status is asked

    return [
        Upcoming(d.name, next_digest_time(each, when), d.schedule, d.timezone.key)
        for each in config.each_digest()
        for d in (each.digest,)
    ]


def as_json(config: Config, report: StatusReport) -> dict[str, Any]:
    """``status --json``: the documented object (health.FORMAT)."""
    shown = report.facts.as_json(config)
    if report.upcoming:  # several digests: each one's next slot (one digest: next_digest alone, as ever)
        shown["next_digests"] = [
            {"name": u.name, "at": u.at.isoformat() if u.at else None, "schedule": u.schedule, "timezone": u.timezone}
            for u in report.upcoming
        ]
    return shown


def digest_report(config: Config, shown: health.DigestStatus) -> DigestReport:
    done = shown.batches
    counted = list(COUNTED) + ([BatchState.SENDING] if done[BatchState.SENDING] else [])
    in_doubt = [b for b in shown.unfinished if b.state == BatchState.IN_DOUBT]
    failed = [b for b in shown.unfinished if b.state == BatchState.FAILED]
    return DigestReport(
        digest=shown.digest,
        provider=config.mailer.provider,
        counts=[(state, done[state]) for state in counted] if shown.total else [],
        provider_list=not shown.recipients and config.mailer.provider in LIST_OWNERS,
        recipients=shown.recipients,
        reached=shown.reached,
        refused=shown.refused,
        unfinished=failed + in_doubt,
        in_doubt_keys=[b.key for b in in_doubt],
        advice=_advice(shown.digest, bool(in_doubt), bool(failed)),
    )


def _advice(digest: Digest, in_doubt: bool, failed: bool) -> list[Advice]:
    if digest.state == DigestState.CLOSED:
        return []  # the operator left it as it is
    advice = [Advice.CHECK_IN_DOUBT] if in_doubt else []
    advice += [Advice.RETRY_FAILED] if failed else []
    return advice + ([Advice.CLOSE] if digest.state == DigestState.INCOMPLETE else [])


def _last(digest: Digest) -> LastDigest:
    sent = digest.state == DigestState.SENT
    return LastDigest(
        digest=digest,
        sent_at=digest.sent_at if sent else None,
        tried_at=None if sent else digest.sent_at,
        attempts=None if sent else digest.attempts,
    )
