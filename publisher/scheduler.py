"""``publisher daemon``: APScheduler 3.x runs the digest on its crontab and refreshes often.

The digest job lives in the store (SQLAlchemyJobStore, table ``apscheduler_jobs``), and its
next run time is saved as the job is handed to the executor. So after downtime the missed slot
runs once at start-up (``coalesce``, no misfire limit), and a slot that already started never
runs again (a kill in the very instant of the hand-over runs it once more after a restart,
which only continues the same unsent digest).
The refresh job (ingest + feed) runs at start and every ``[daemon] refresh_minutes``.
One daemon per SQLite store: a second one refuses to start (:func:`only_daemon`); on
PostgreSQL any number of daemons form a cluster instead (publisher.cluster).

The daemon shows no progress: its log is the record of what it did. Every line names its job
(``job``), a send's outcome its digest (``digest_id``), and publisher.dispatch logs each batch
with its digest id and key, so ``--log-format json`` lets an operator follow one send.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from publisher import clock, crontab, jobs
from publisher import config as config_module
from publisher.config import DEFAULT_DIGEST, Config
from publisher.delivery import build_mailer
from publisher.errors import PublisherError
from publisher.store import Store
from publisher.store.locks import Lock, LockHeld

log = logging.getLogger("publisher.daemon")
DIGEST_JOB = "digest"
REFRESH_JOB = "refresh"


def digest_trigger(config: Config) -> crontab.WallClockCron:
    """The ``[digest] schedule`` crontab line as a trigger (checked when the config was loaded)."""
    return crontab.trigger(config.digest.schedule, config.digest.timezone)


def next_digest_time(config: Config, after: datetime) -> datetime | None:
    fire: datetime | None = digest_trigger(config).get_next_fire_time(None, after)
    return fire


def job_id(name: str) -> str:
    """The daemon's job of digest ``name``: "digest" for the single [digest], as ever."""
    return DIGEST_JOB if name == DEFAULT_DIGEST else f"{DIGEST_JOB}:{name}"


def job_args(config: Config, name: str) -> list[str]:
    return [str(config.path)] if name == DEFAULT_DIGEST else [str(config.path), name]


def digest_job(config_path: str, name: str = DEFAULT_DIGEST) -> str:
    """A digest's slot: a whole cycle, so it includes what arrived since the refresh."""
    sent = _cycle(config_path, job_id(name), due=[name]).digest
    return sent.state if sent is not None else "nothing"


def refresh_job(config_path: str) -> str:
    """Ingest new files and rebuild the feeds between digests; retry a digest that failed."""
    _cycle(config_path, REFRESH_JOB)
    return "refreshed"


def _cycle(config_path: str, job: str, due: list[str] | None = None) -> jobs.CycleResult:
    """One cycle with the config as it is now on disk, logged line by line."""
    log.info("%s job: started", job, extra={"job": job})
    config = config_module.load(Path(config_path))
    store = Store.open(config.store_url)
    try:
        mailer = build_mailer(config)
        result = jobs.run_cycle(config, store, mailer, clock.now(), new_digest=due is not None, due=due or [])
    finally:
        store.close()
    for error in result.ingest.errors:
        log.error("%s", error, extra={"job": job, "path": error.path})
    if result.published.error is not None:
        log.error("%s", result.published.error, extra={"job": job})
    log.info("%s; %s", result.ingest.summary(), result.published.summary(), extra={"job": job})
    for ping in result.published.pings:
        log.log(logging.INFO if ping.ok else logging.ERROR, "%s", ping.message, extra={"job": job})
    for sent in result.sends:
        fields = {"job": job, "digest_id": sent.digest_id, "provider": mailer.name}
        log.log(logging.INFO if sent.ok else logging.ERROR, "%s", sent.message, extra=fields)
    for problem in result.unsaid():  # every cycle until settled, as `publisher run` says it
        log.error("%s", problem.message, extra={"job": job, "digest_id": problem.digest_id})
    return result


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]  # apscheduler has no type hints
    """A BackgroundScheduler that hands out no job once shutdown has begun.

    APScheduler 3.x sets the state to stopped, then shuts the executors down while holding
    the job stores lock. A slot that comes due meanwhile (say, 07:00 while SIGTERM waits
    for a refresh to finish) wakes the main loop, which gets the lock afterwards, submits
    the job to the closed executor (RuntimeError: cannot schedule new futures after
    shutdown, agronholm/apscheduler#285) and still saves the next run time: the digest
    would be lost, not run after the restart. Checked under the lock, the slot stays saved.
    """

    def _process_jobs(self) -> float | None:
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:
                return None
            wait_seconds: float | None = super()._process_jobs()
            return wait_seconds


def run_daemon(
    config: Config,
    stop: threading.Event,
    *,
    on_job: Callable[[JobExecutionEvent], None] | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Run until ``stop`` is set, then let a running job finish and return.

    On a PostgreSQL store the daemon joins the cluster of daemons on it (publisher.cluster).
    """
    if config.store_url.startswith("postgresql"):
        try:
            from publisher.cluster.daemon import run as run_in_cluster
        except ImportError as exc:  # procrastinate comes with the [postgres] extra
            raise PublisherError(
                f"daemon: a PostgreSQL store needs {exc.name}: pip install 'publisher[postgres]'"
            ) from None
        run_in_cluster(config, stop, ready=ready)
        return
    build_mailer(config)  # a missing secret stops the daemon now, not at 7 a.m.
    store = Store.open(config.store_url)
    with ExitStack() as cleanup:
        cleanup.callback(store.close)
        cleanup.enter_context(only_daemon(store))
        _schedule(config, store, stop, on_job=on_job, ready=ready)


@contextmanager
def only_daemon(store: Store) -> Iterator[None]:
    """Hold the store's daemon lock, or raise: two daemons would both run every job.

    The operating system drops the lock when the process dies, even by SIGKILL: a file lock
    (flock) beside a SQLite store, a session advisory lock on PostgreSQL.
    """
    with ExitStack() as held:
        try:
            held.enter_context(store.lock(Lock.DAEMON))
        except LockHeld as taken:
            raise _already_running(taken.detail) from None
        yield


def _already_running(detail: str) -> PublisherError:
    return PublisherError(f"daemon: another daemon already runs on this store ({detail}); stop it first")


def _schedule(
    config: Config,
    store: Store,
    stop: threading.Event,
    *,
    on_job: Callable[[JobExecutionEvent], None] | None,
    ready: Callable[[str], None] | None,
) -> None:
    scheduler = _Scheduler(
        jobstores={"default": store.job_store(), "memory": MemoryJobStore()},
        # One worker: the refresh and the digest never write the store at the same time.
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=config.digest.timezone,
    )
    refresh = IntervalTrigger(minutes=config.refresh_minutes, timezone=config.digest.timezone)
    each = {job_id(d.name): (d.name, crontab.trigger(d.schedule, d.timezone)) for d in config.digests}
    triggers: dict[str, Any] = {job: trigger for job, (_, trigger) in each.items()} | {REFRESH_JOB: refresh}
    scheduler.add_listener(lambda event: _job_done(triggers, event, on_job), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start(paused=True)
    try:
        for job in scheduler.get_jobs(jobstore="default"):
            if job.id.partition(":")[0] == DIGEST_JOB and job.id not in each:  # a digest no longer in the config
                scheduler.remove_job(job.id, jobstore="default")
        for job, (name, trigger) in each.items():
            _keep_slot(scheduler, job, trigger, job_args(config, name))
        scheduler.add_job(
            refresh_job,
            refresh,
            args=[str(config.path)],
            id=REFRESH_JOB,
            jobstore="memory",
            next_run_time=clock.now(),
        )
        planned = {d.name: scheduler.get_job(job_id(d.name), jobstore="default") for d in config.digests}
        scheduler.resume()
        if ready is not None:
            ready(f"daemon: started; {_planned_line(config, planned)}; refresh every {config.refresh_minutes} min")
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)


def _planned_line(config: Config, jobs_by_name: dict[str, Any]) -> str:
    """Each digest's schedule and next run, for the start-up line; the single [digest] as ever."""
    parts = []
    for d in config.digests:
        job = jobs_by_name[d.name]
        next_run = job.next_run_time.isoformat() if job and job.next_run_time else "never"
        label = "digest" if len(config.digests) == 1 else f"digest {d.name}"
        parts.append(f"{label} on '{d.schedule}' ({d.timezone.key}), next {next_run}")
    return "; ".join(parts)


def _keep_slot(scheduler: _Scheduler, job: str, trigger: CronTrigger, args: list[str]) -> None:
    """Add the digest's job, keeping a saved one with the same schedule: its next run time may
    be a missed slot (run once at start, the slots coalesced)."""
    saved = scheduler.get_job(job, jobstore="default")
    if saved is None or str(saved.trigger) != str(trigger):
        scheduler.add_job(digest_job, trigger, args=args, id=job, jobstore="default", replace_existing=True)
    elif list(saved.args) != args or type(saved.trigger) is not type(trigger):
        # The config moved, or the job was saved by an older publisher with a plain CronTrigger:
        # keep the slot, read the config from where it is now, fire once per wall-clock slot.
        scheduler.modify_job(job, jobstore="default", args=args, trigger=trigger)


def _job_done(
    triggers: dict[str, Any], event: JobExecutionEvent, on_job: Callable[[JobExecutionEvent], None] | None
) -> None:
    """The daemon's own line for a job's end: its failure if it failed, and when it runs next.

    APScheduler's records say the same in its own words; they are shown with ``-v`` only
    (publisher.logs). The next run comes from the trigger, not from ``scheduler.get_job``:
    that takes the job stores lock, which shutdown holds while it waits for this very job.
    """
    fields = {"job": event.job_id}
    if event.exception is not None:
        if isinstance(event.exception, PublisherError):
            log.error("%s job: %s", event.job_id, event.exception, extra=fields)
        else:
            log.error("%s job crashed: %r", event.job_id, event.exception, extra=fields)
    trigger = triggers.get(event.job_id)
    # An interval runs again one interval after this run; a crontab at its next slot from now.
    previous = event.scheduled_run_time if isinstance(trigger, IntervalTrigger) else None
    fire = trigger.get_next_fire_time(previous, clock.now()) if trigger is not None else None
    upcoming = fire.isoformat() if fire is not None else "never"
    log.info("%s job: done; next run %s", event.job_id, upcoming, extra=fields)
    if on_job is not None:
        on_job(event)
