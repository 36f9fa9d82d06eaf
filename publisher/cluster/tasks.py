"""The cluster's jobs, run by whichever daemon's worker takes them.

    digest      a slot of one digest's ``schedule`` (the job's ``name``): ingest, feeds, create
                that digest and claim it, then queue its batches
                                       (lock: publish; queueing lock: slot_key(name))
    refresh     every ``[daemon] refresh_minutes``: ingest, feeds, continue every unsent digest
                                                             (lock: publish; queueing lock)
    batch       one batch of a send, through the journal's steps (publisher.dispatch.send_batch)
                                                             (lock and queueing lock: the batch key)
    settle      once a send's batches are finished: sent or incomplete, and the web copy
                                                             (lock and queueing lock: the digest)
    stalled     Procrastinate's stalled-jobs retry: the jobs of a daemon whose heartbeat stopped
                go back to the queue, for another daemon        (every ``[daemon] stall_seconds``)
    prune       finished jobs older than a week are deleted, and daemons silent for an hour
                                                                (hourly)

The ``publish`` lock keeps two daemons from ingesting or writing the feeds at once. A batch's
lock keeps its job from running twice at once: a second job for it waits, then finds it
finished. A daemon that dies mid-batch leaves the batch ``sending``; its job is retried after
the stall timeout, and the journal decides as in one process: sent again with the same key to
a provider that dedupes on it, held as in doubt for the others.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status

from publisher import bucket, clock, dispatch, intake, jobs, journal, slots
from publisher import config as config_module
from publisher.config import DEFAULT_DIGEST, Config
from publisher.delivery import Mailer, build_mailer
from publisher.dispatch import OnBatch, SendResult
from publisher.errors import PublisherError
from publisher.states import SendState
from publisher.store import Digest, Store

log = logging.getLogger("publisher.daemon")
P = ParamSpec("P")

DIGEST, REFRESH, BATCH, SETTLE, STALLED, PRUNE = "digest", "refresh", "batch", "settle", "stalled", "prune"
KEEP_HOURS = 7 * 24  # finished jobs stay this long for `publisher status` and inquiries, then go
PUBLISH_LOCK = "publish"  # ingest and the feeds: one job at a time in the cluster
SLOT = "cluster_slot"  # the setting: "<slot> <when its first run began>" of the newest slot run


def slot_key(name: str) -> str:
    """The periodic id and queueing lock of digest ``name``'s slots: the single ``[digest]``
    keeps the task's own name (stores made before several digests go on as they were)."""
    return DIGEST if name == DEFAULT_DIGEST else f"{DIGEST}:{name}"


def _slot_setting(name: str) -> str:
    return SLOT if name == DEFAULT_DIGEST else f"{SLOT}:{name}"


@dataclass
class Context:
    """What the jobs of one daemon share: the config's path (read again by every job, as the
    SQLite daemon does), the open store, and the app to queue more jobs on."""

    config_path: Path
    store: Store
    app: App
    stall_seconds: int

    def config(self) -> Config:
        return config_module.load(self.config_path)


def _reported(job: str) -> Callable[[Callable[P, str]], Callable[P, str]]:
    """A job that meets a PublisherError (the store unreachable, a config gone bad) says so in
    one line and ends; the next slot or refresh does its work again."""

    def wrap(function: Callable[P, str]) -> Callable[P, str]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> str:
            try:
                return function(*args, **kwargs)
            except PublisherError as exc:
                log.error("%s job: %s", job, exc, extra={"job": job})
                return "failed"

        return run

    return wrap


def register(app: App, ctx: Context) -> None:
    """Add the cluster's tasks to ``app``."""

    @app.task(name=DIGEST, lock=PUBLISH_LOCK, queueing_lock=DIGEST)
    @_reported(DIGEST)
    def digest_slot(timestamp: int, name: str = DEFAULT_DIGEST) -> str:
        return _cycle(ctx, DIGEST, creating=name if _first_run(ctx.store, timestamp, name) else None)

    @app.task(name=REFRESH, lock=PUBLISH_LOCK, queueing_lock=REFRESH)
    @_reported(REFRESH)
    def refresh(timestamp: int) -> str:
        return _cycle(ctx, REFRESH, creating=None)

    @app.task(name=BATCH)
    @_reported(BATCH)
    def send_batch(digest_id: str, batch_id: int) -> str:
        config, store = ctx.config(), ctx.store
        digest = store.digest(digest_id)
        if digest is None:
            return "no such digest"
        mailer = build_mailer(config)
        try:
            report = dispatch.send_batch(config, store, mailer, digest, batch_id)
        finally:
            mailer.close()
        _queue(app, SETTLE, f"settle:{digest_id}", digest_id=digest_id)
        return report.state if report is not None else "finished already"

    @app.task(name=SETTLE)
    @_reported(SETTLE)
    def settle(digest_id: str) -> str:
        config, store = ctx.config(), ctx.store
        digest = store.digest(digest_id)
        result = dispatch.settle(config, store, digest) if digest is not None else None
        if result is None:
            return "batches left"
        _log_sent(result, DIGEST)
        return result.state

    @app.task(name=STALLED, queueing_lock=STALLED)
    async def retry_stalled(timestamp: int) -> int:
        stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=ctx.stall_seconds))
        for job in stalled:
            log.warning(
                "job %s %s: its daemon stopped answering; back in the queue",
                job.id,
                job.task_name,
                extra={"job": STALLED},
            )
            try:
                await app.job_manager.retry_job(job)
            except UniqueViolation:
                # A twin waits in the queue already (a slot queued the batch again): it does the
                # work once this one lets go of the lock.
                await app.job_manager.finish_job(job, Status.ABORTED, delete_job=False)
        return len(stalled)

    @app.task(name=PRUNE, queueing_lock=PRUNE)
    async def prune(timestamp: int) -> str:
        await app.job_manager.delete_old_jobs(nb_hours=KEEP_HOURS, include_failed=True, include_aborted=True)
        # A daemon silent for an hour is gone (its jobs were retried long ago): out of `status`.
        await app.job_manager.prune_stalled_workers(max(3600, 10 * ctx.stall_seconds))
        return "pruned"

    ctx.app = app


def _queue(app: App, task: str, lock: str, **kwargs: str | int) -> bool:
    """Queue ``task`` unless a job with the same lock waits in the queue already."""
    try:
        app.tasks[task].configure(lock=lock, queueing_lock=lock).defer(**kwargs)
    except AlreadyEnqueued:
        return False
    return True


def spreader(app: App) -> dispatch.BatchRunner:
    """What sends a claimed digest's batches in a cluster: one job per unfinished batch."""

    def spread(
        config: Config, store: Store, mailer: Mailer, digest: Digest, resend_in_doubt: bool, on_batch: OnBatch | None
    ) -> SendResult:
        planned = dispatch.plan(config, store, mailer, digest)
        unfinished = [b for b in planned if b.state not in journal.FINISHED]
        for batch in unfinished:
            _queue(app, BATCH, batch.key, digest_id=digest.id, batch_id=batch.id)
        if not unfinished:
            _queue(app, SETTLE, f"settle:{digest.id}", digest_id=digest.id)
        return SendResult(
            SendState.QUEUED, f"digest {digest.id}: {len(unfinished)} of {len(planned)} batches queued", digest.id
        )

    return spread


def _first_run(store: Store, timestamp: int, name: str = DEFAULT_DIGEST) -> bool:
    """Whether this slot of digest ``name`` may create one: yes, unless a run of it (its job
    retried after its daemon died) created one already; then it only continues that digest. So a
    slot never sends two digests, and a run that died before creating one does not lose the slot."""
    setting = _slot_setting(name)
    slot, _, started = (store.setting(setting) or "").partition(" ")
    if slot != str(timestamp):
        store.put_setting(setting, f"{timestamp} {clock.now().isoformat()}")
        return True
    last = store.last_digest(name)
    return last is None or last.created_at < datetime.fromisoformat(started)


def _cycle(ctx: Context, job: str, *, creating: str | None) -> str:
    """Ingest, the feeds, then the digests: a new one of the digest ``creating`` (a slot's
    first run), and every one left unsent, by name (as jobs.run_cycle with ``due=[creating]``)."""
    log.info("%s job: started", job, extra={"job": job})
    try:
        config = ctx.config()
        mailer = build_mailer(config)
    except PublisherError as exc:
        log.error("%s job: %s", job, exc, extra={"job": job})
        return "config error"
    store, when = ctx.store, clock.now()
    ingested = intake.ingest_articles(config, store, when)
    published = jobs.publish_feeds(config, store)
    for error in ingested.errors:
        log.error("%s", error, extra={"job": job, "path": error.path})
    if published.error is not None:
        log.error("%s", published.error, extra={"job": job})
    log.info("%s; %s", ingested.summary(), published.summary(), extra={"job": job})
    if config.bucket is not None and published.feed is not None:
        try:
            uploaded = bucket.publish(config, store, published.feed)
            log.info("bucket %s: %d objects put or deleted", config.bucket.name, uploaded, extra={"job": job})
        except PublisherError as exc:  # the digest still goes out; the next cycle uploads again
            log.error("%s", exc, extra={"job": job})
    sent = None
    for each in config.each_digest():
        name = each.digest.name
        if name != creating and store.unsent_digest(name) is None:
            continue
        sent = dispatch.send_digest_by(spreader(ctx.app), each, store, mailer, when, create=name == creating)
        if name == creating:
            slots.handled(config, store, name, when)  # `publisher run` counts its next slot after this one
        _log_sent(sent, job)
    return sent.state if sent is not None else "refreshed"


def _log_sent(sent: SendResult, job: str) -> None:
    fields = {"job": job, "digest_id": sent.digest_id}
    log.log(
        logging.INFO if sent.ok or sent.state == SendState.QUEUED else logging.ERROR, "%s", sent.message, extra=fields
    )
