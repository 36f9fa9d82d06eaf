"""What ``publisher status`` shows, and what needs the operator.

A *problem* is something that will not mend itself: a digest that is ``incomplete`` (batches
failed for good, or in doubt) waits for the operator's ``publisher digest resume`` or
``publisher digest close``, so ``publisher run`` repeats it on every run and exits 1, and
``publisher status --check`` exits 1. Passing trouble (a digest waiting for the next run's
retry, a WebSub hub that is down) is shown but is not a problem: the next runs deal with it.

:func:`status` gathers everything once; the CLI prints it as lines or, with ``--json``, as
:meth:`Status.as_json` (documented in the README, ``"format": 1``; new keys may be added,
none is renamed or removed without a new format number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from publisher import hold, journal, subscribers, websub
from publisher.bounces import watch
from publisher.config import LIST_OWNERS, Config
from publisher.errors import StoreError
from publisher.states import BatchState, DigestState
from publisher.store import Article, Digest, Store, notices, remote, safe_url, signups, urls
from publisher.store import cluster as cluster_sql

FORMAT = 1  # of the --json object
RECENT_DIGESTS = 5  # shown with their batches, besides every incomplete one
STATES = (BatchState.ACCEPTED, BatchState.FAILED, BatchState.IN_DOUBT, BatchState.PENDING, BatchState.SENDING)


@dataclass(frozen=True)
class Problem:
    kind: str  # no_store, digest_incomplete, complaint_rate, source_failing, notice_failed
    message: str  # one line: what is wrong and what to do
    digest_id: str | None = None


@dataclass(frozen=True)
class DigestStatus:
    digest: Digest
    batches: dict[str, int]  # every state in STATES, 0 when none
    recipients: int  # planned; 0 when the provider keeps the list
    reached: int
    refused: int  # in accepted batches, refused one by one by the provider
    unfinished: list[journal.Batch]  # the failed and in-doubt batches

    @property
    def total(self) -> int:
        return sum(self.batches.values())


@dataclass(frozen=True)
class Status:
    store: str  # the URL without its password
    schema_version: int | None  # None: no store yet
    articles: int = 0
    newest: Article | None = None
    subscribers: dict[str, int] | None = None  # active, unsubscribed (a local list only)
    digests: list[DigestStatus] = field(default_factory=list)  # newest first
    next_digest: datetime | None = None
    hubs: list[websub.HubState] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    held_since: datetime | None = None  # `publisher digest hold`: no new digest until released
    # A local list: sign-ups and confirmations over the last 7 and 30 days, by "7d" / "30d".
    signups: dict[str, dict[str, int]] | None = None
    bounces: list[watch.Window] | None = None  # the complaint-rate watch (a local list only)
    cluster: ClusterStatus | None = None  # PostgreSQL: the daemons and their jobs (publisher.cluster)

    @property
    def exists(self) -> bool:
        return self.schema_version is not None

    def as_json(self, config: Config) -> dict[str, Any]:
        newest = self.newest and {"published": self.newest.published.isoformat(), "title": self.newest.title}
        return {
            "format": FORMAT,
            "ok": not self.problems,
            "store": {"url": self.store, "exists": self.exists, "schema_version": self.schema_version},
            "articles": {
                "count": self.articles,
                "newest": newest,
            },
            "subscribers": self.subscribers,
            "digests": [_digest_json(d, config) for d in self.digests],
            "next_digest": {
                "at": self.next_digest.isoformat() if self.next_digest else None,
                "schedule": config.digest.schedule,
                "timezone": config.digest.timezone.key,
            },
            "hold": {"held": self.held_since is not None, "since": _iso(self.held_since)},
            "signups": self.signups,
            "hubs": [
                {
                    "hub": h.hub,
                    "waiting": len(h.topics),
                    "failures": h.failures,
                    "retry_at": h.retry_at.isoformat() if h.retry_at else None,
                    "error": h.error,
                }
                for h in self.hubs
            ],
            "bounces": self.bounces and {"line": watch.LINE, "windows": [w.as_json() for w in self.bounces]},
            "problems": [{"kind": p.kind, "digest_id": p.digest_id, "message": p.message} for p in self.problems],
            "cluster": self.cluster.as_json() if self.cluster is not None else None,
        }


@dataclass(frozen=True)
class ClusterStatus:
    """The daemons of a PostgreSQL store: each worker's last heartbeat, and the jobs' states."""

    workers: list[cluster_sql.Worker]
    jobs: cluster_sql.Jobs

    @property
    def alive(self) -> int:
        return sum(1 for w in self.workers if w.alive)

    def as_json(self) -> dict[str, Any]:
        return {
            "workers": [
                {"id": w.id, "last_heartbeat": w.last_heartbeat.isoformat(), "alive": w.alive} for w in self.workers
            ],
            "jobs": {
                "queued": self.jobs.queued,
                "running": self.jobs.running,
                "stalled": self.jobs.stalled,
                "failed": self.jobs.failed,
            },
        }


def cluster_status(config: Config, store: Store) -> ClusterStatus | None:
    """The cluster on the store, if it is PostgreSQL and a daemon ever ran on it."""
    if not cluster_sql.is_postgresql(config.store_url) or not cluster_sql.has_engine_schema(store):
        return None
    return ClusterStatus(
        cluster_sql.workers(store, config.stall_seconds), cluster_sql.jobs(store, config.stall_seconds)
    )


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _digest_json(d: DigestStatus, config: Config) -> dict[str, Any]:
    digest = d.digest
    return {
        "id": digest.id,
        "state": digest.state,
        "articles": digest.article_count,
        "created_at": digest.created_at.isoformat(),
        "sent_at": digest.sent_at.isoformat() if digest.sent_at and digest.state == DigestState.SENT else None,
        "attempts": digest.attempts,
        "last_error": digest.last_error,
        "batches": {"total": d.total, **d.batches},
        "recipients": {
            "planned": d.recipients,
            "reached": d.reached,
            "refused": d.refused,
            "providers_list": not d.recipients and config.mailer.provider in LIST_OWNERS,
        },
        "unfinished_batches": [
            {"number": b.number, "key": b.key, "state": b.state, "reason": b.last_error} for b in d.unfinished
        ],
    }


def open_existing(url: str) -> Store | None:
    """The store at ``url`` if there is one, else None, creating nothing (no file, no table)."""
    problem = urls.unreadable(url)
    if problem is not None:
        raise StoreError(f"store: cannot use {safe_url(url)}: {problem} ([store] url)")
    database = urls.sqlite_file(url)
    if database is not None and (database in ("", ":memory:") or not Path(database).is_file()):
        return None  # connecting would create the file
    store = Store(url)
    found = store.has_schema()
    if not found:
        store.close()
        return None
    store.migrate()  # an older schema is brought up to date, as every command does
    return store


def no_store(url: str) -> str:
    """The line for a command that reads the store and finds none (it creates none)."""
    return f"no store yet at {safe_url(url)}: `publisher run` creates it ([store] url)"


def status(config: Config, when: datetime, *, recent: int = RECENT_DIGESTS) -> Status:
    """Everything ``publisher status`` shows, from the store if there is one."""
    from publisher.scheduler import next_digest_time  # apscheduler: only when status is asked

    upcoming = next_digest_time(config, when)
    shown = safe_url(config.store_url)
    store = open_existing(config.store_url)
    if store is None:
        line = no_store(config.store_url)
        return Status(store=shown, schema_version=None, next_digest=upcoming, problems=[Problem("no_store", line)])
    try:
        newest = store.newest_articles(1)
        digests = store.recent_digests(recent)
        seen = {d.id for d in digests}
        for digest_id in journal.incomplete_digests(store):  # however old: they still need the operator
            old = store.digest(digest_id)
            if digest_id not in seen and old is not None:
                digests.append(old)
        states = [digest_status(store, d) for d in digests]
        local = config.digest.recipients == "subscribers"
        bounces = watch.watch(store, when) if local else None
        complaints = watch.warning(bounces) if bounces else None
        return Status(
            store=shown,
            schema_version=store.schema_version(),
            articles=store.article_count(),
            newest=newest[0] if newest else None,
            subscribers=dict(subscribers.counts(store)) if config.digest.recipients == "subscribers" else None,
            digests=states,
            next_digest=upcoming,
            hubs=websub.Backlog.load(store).hubs(),
            held_since=hold.held_since(store),
            signups=_signups(store, when) if config.digest.recipients == "subscribers" else None,
            cluster=cluster_status(config, store),
            problems=[_problem(config, d) for d in states if d.digest.state == DigestState.INCOMPLETE]
            + ([Problem("complaint_rate", complaints)] if complaints else [])
            + source_problems(config, store, when)
            + (notice_problems(store, when) if config.digest.recipients == "subscribers" else []),
            bounces=bounces,
        )
    finally:
        store.close()


SIGNUP_DAYS = (7, 30)


def notice_problems(store: Store, when: datetime) -> list[Problem]:
    """Sign-up emails (confirmations, welcomes) that failed or may not have gone out in the
    last 7 days: a sign-up page whose emails do not leave loses every reader unnoticed."""
    troubled = notices.troubled(store, when - timedelta(days=SIGNUP_DAYS[0]))
    failed, in_doubt = troubled.get(BatchState.FAILED, 0), troubled.get(BatchState.IN_DOUBT, 0)
    if not failed and not in_doubt:
        return []
    return [
        Problem(
            "notice_failed",
            f"sign-up emails in the last 7 days: {failed} failed, {in_doubt} in doubt (the log names each; "
            "check [mailer], then the readers can sign up again)",
        )
    ]


def _signups(store: Store, when: datetime) -> dict[str, dict[str, int]]:
    found = {}
    for days in SIGNUP_DAYS:
        signed, confirmed = signups.activity(store, when - timedelta(days=days))
        found[f"{days}d"] = {"signups": signed, "confirmations": confirmed}
    return found


def source_problems(config: Config, store: Store, when: datetime) -> list[Problem]:
    """The [[sources]] that have failed for longer than their ``alert_after``."""
    known = {s.name: s for s in remote.sources(store)}
    found = []
    for source in config.sources:
        s = known.get(source.name)
        if s is None or s.configured_url != source.url or s.failing_since is None:
            continue
        if when - s.failing_since >= source.alert_after:
            line = f"source {source.name}: failing since {s.failing_since:%Y-%m-%d %H:%M} UTC: {s.last_error}"
            found.append(Problem("source_failing", line))
    return found


def problems(config: Config, store: Store) -> list[Problem]:
    """The digests that need the operator, one line each: what `publisher run` repeats."""
    found = []
    for digest_id in journal.incomplete_digests(store):
        digest = store.digest(digest_id)
        if digest is not None:
            found.append(_problem(config, digest_status(store, digest)))
    return found


def digest_status(store: Store, digest: Digest) -> DigestStatus:
    planned = journal.batches_of(store, digest.id)
    done = journal.summary(store, digest.id)
    return DigestStatus(
        digest=digest,
        batches={state: done.batches[state] for state in STATES},
        recipients=sum(done.recipients.values()),
        reached=done.reached,
        refused=done.rejected,
        unfinished=[b for b in planned if b.state in (BatchState.FAILED, BatchState.IN_DOUBT)],
    )


def _problem(config: Config, d: DigestStatus) -> Problem:
    """One line: how much of the digest did not go out, and the commands that settle it."""
    digest_id = d.digest.id
    failed = [b for b in d.unfinished if b.state == BatchState.FAILED]
    in_doubt = [b for b in d.unfinished if b.state == BatchState.IN_DOUBT]
    parts = []
    if failed:
        reason = _one_line(failed[0].last_error or "no reason recorded")
        parts.append(
            f"{_of(len(failed), d.total)} failed ({reason}): fix the cause, then "
            "`publisher digest resume --retry-failed`"
        )
    if in_doubt:
        keys = ", ".join(b.key for b in in_doubt[:3]) + (", ..." if len(in_doubt) > 3 else "")
        parts.append(
            f"{_of(len(in_doubt), d.total)} in doubt ({keys}): if {config.mailer.provider}'s log does not have "
            "them, `publisher digest resume --resend-in-doubt`"
        )
    if not parts:  # incomplete without such a batch: only a hand edit of the store does that
        parts.append("not every batch was accepted")
    line = f"digest {digest_id} not sent to everyone: {'; '.join(parts)}; or `publisher digest close {digest_id}`"
    return Problem("digest_incomplete", line, digest_id)


def _of(n: int, total: int) -> str:
    return f"{n} of {total} {'batch' if total == 1 else 'batches'}"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
