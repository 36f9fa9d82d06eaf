"""``publisher daemon`` on a PostgreSQL store: one member of a cluster of any size.

The daemon runs a Procrastinate worker (the jobs of publisher.cluster.tasks, up to
``[mailer] concurrency`` + 1 at once, with a heartbeat every third of ``[daemon]
stall_seconds``) and the slot deferrer (publisher.cluster.slots) until ``stop`` is set; then
it lets its running jobs finish and leaves the cluster. Each digest of the file has its own
slots (its schedule, its time zone, its periodic key: tasks.slot_key), as each has its own job
in the SQLite daemon. Killed instead, its heartbeat stops:
after ``stall_seconds`` another daemon's stalled-jobs retry puts its jobs back in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from procrastinate import App
from procrastinate.worker import Worker

from publisher import bucket, clock, crontab
from publisher.cluster import app as app_module
from publisher.cluster import slots, tasks
from publisher.config import Config
from publisher.delivery import build_mailer
from publisher.errors import PublisherError
from publisher.store import Store, safe_url
from publisher.store import cluster as sql

log = logging.getLogger("publisher.daemon")
SINCE = "cluster_since"  # the setting: when the first daemon started; no slot before it is caught up


def run(config: Config, stop: threading.Event, *, ready: Callable[[str], None] | None = None) -> None:
    """Join the cluster on the store's database until ``stop`` is set."""
    build_mailer(config)  # a missing secret stops the daemon now, not at 7 a.m.
    bucket.check(config)
    _quiet_engine()
    triggers = {d.name: crontab.trigger(d.schedule, d.timezone) for d in config.digests}
    store = Store.open(config.store_url)
    try:
        sql.engine_schema(store)  # a new database gets Procrastinate's tables (`publisher db upgrade` too)
        since = datetime.fromisoformat(store.set_setting_once(SINCE, clock.now().isoformat()))
        concurrency = config.mailer.concurrency + 1  # one more: a slot's job never waits for a send
        app = app_module.build(config.store_url, connections=concurrency + 4)
        ctx = tasks.Context(config.path, store, app, config.stall_seconds)
        tasks.register(app, ctx)
        now = clock.now()
        schedules = [_digest_schedule(store, name, trigger, since) for name, trigger in triggers.items()]
        schedules += [
            # A starting daemon offers the refresh slot under way (once per slot in the cluster).
            slots.Schedule(tasks.REFRESH, tasks.PUBLISH_LOCK, *slots.every(config.refresh_minutes * 60), after=since),
            slots.Schedule(tasks.STALLED, None, *slots.every(config.stall_seconds), after=now),
            slots.Schedule(tasks.PRUNE, None, *slots.every(3600), after=now),
        ]

        def started(worker_id: int | None) -> None:
            if ready is not None:
                ready(
                    f"daemon: started; {_next_slots(config, triggers)}; refresh every {config.refresh_minutes} "
                    f"min; in the cluster on {safe_url(config.store_url)} as worker {worker_id}"
                )

        asyncio.run(_serve(app, slots.Deferrer(store, schedules), concurrency, config.stall_seconds, stop, started))
    finally:
        store.close()


def _digest_schedule(store: Store, name: str, trigger: crontab.WallClockCron, since: datetime) -> slots.Schedule:
    """Digest ``name``'s slots, under a periodic key of its own, caught up after its last one."""
    key = tasks.slot_key(name)
    after = _after(sql.last_defer(store, tasks.DIGEST, key), since)
    args = {} if key == tasks.DIGEST else {"name": name}  # the single digest's jobs stay as they were
    return slots.Schedule(tasks.DIGEST, tasks.PUBLISH_LOCK, *slots.cron(trigger), after=after, key=key, args=args)


def _next_slots(config: Config, triggers: dict[str, crontab.WallClockCron]) -> str:
    """Each digest's schedule and next slot, as the started line says them."""
    said = []
    for digest in config.digests:
        upcoming = triggers[digest.name].get_next_fire_time(None, clock.now())
        label = "digest" if len(config.digests) == 1 else f"digest {digest.name}"
        at = upcoming.isoformat() if upcoming else "never"
        said.append(f"{label} on '{digest.schedule}' ({digest.timezone.key}), next {at}")
    return "; ".join(said)


def _after(last_defer: int | None, since: datetime) -> datetime:
    if last_defer is None:
        return since
    return max(since, datetime.fromtimestamp(last_defer, since.tzinfo))


async def _serve(
    app: App,
    deferrer: slots.Deferrer,
    concurrency: int,
    stall_seconds: int,
    stop: threading.Event,
    started: Callable[[int | None], None],
) -> None:
    loop = asyncio.get_running_loop()
    # Sync jobs run in the loop's default executor: room for every job at once, and then some.
    loop.set_default_executor(ThreadPoolExecutor(concurrency + 4, thread_name_prefix="publisher-job"))
    stopping = asyncio.Event()
    threading.Thread(
        target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopping.set)), name="publisher-stop", daemon=True
    ).start()
    async with app.open_async():
        member = Worker(
            app,
            name=f"{socket.gethostname()}:{os.getpid()}",
            concurrency=concurrency,
            install_signal_handlers=False,
            update_heartbeat_interval=max(1.0, stall_seconds / 3),
            stalled_worker_timeout=stall_seconds,
            fetch_job_polling_interval=max(1.0, stall_seconds / 3),
        )
        worker = asyncio.create_task(member.run())  # type: ignore[no-untyped-call]  # untyped in procrastinate
        first_pass = asyncio.Event()
        deferring = asyncio.create_task(deferrer.run(first_pass))
        await _first(first_pass, worker, deferring)
        while member.worker_id is None and not worker.done():  # registered in its first moments
            await asyncio.sleep(0.05)
        if not worker.done():
            started(member.worker_id)
            await _first(stopping, worker)
        deferring.cancel()
        worker.cancel()  # the worker stops taking jobs and waits for the running ones
        await asyncio.gather(deferring, return_exceptions=True)
        try:
            await worker
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the database went away, or refused the worker
            raise PublisherError(f"daemon: the cluster's worker stopped: {exc}") from exc


async def _first(event: asyncio.Event, *tasks_: asyncio.Task[object]) -> None:
    """Wait for ``event``, or for one of ``tasks_`` to end (a worker that failed)."""
    waiter = asyncio.create_task(event.wait())
    await asyncio.wait([waiter, *tasks_], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def _quiet_engine() -> None:
    """Procrastinate's own records (a line per job) only with ``-v``, as APScheduler's."""
    verbose = logging.getLogger("publisher").getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("procrastinate").setLevel(logging.INFO if verbose else logging.WARNING)
