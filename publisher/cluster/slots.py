"""Each daemon's deferrer: every slot of a schedule becomes one job in the whole cluster.

Every daemon computes the same slots and offers each to Procrastinate's periodic defer
(``procrastinate_defer_periodic_job``), whose unique constraint on (task, periodic id, slot)
lets one offer through (publisher.store.cluster.defer_slot adds a lock and a look at the newest
slot, since Procrastinate keeps only that one); the task's queueing lock then keeps a slot from
queueing behind one still waiting (it would only repeat it). This is Procrastinate's own periodic
mechanism, with the slots computed by publisher.crontab instead of croniter, so that the
schedule means what it means to the SQLite daemon: crontab weekdays, ``[digest] timezone``,
one run per wall-clock slot on the night clocks go back.

Each digest of the file has a schedule of its own, offered under its own periodic id
(publisher.cluster.tasks.slot_key): its slots are counted, deferred and caught up apart.

A missed slot (every daemon down across it) is deferred when a daemon starts again: the
newest slot after the last one deferred (or after the cluster's first start), once, however
many were missed, as APScheduler's coalescing does for the SQLite daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from publisher import clock, crontab
from publisher.store import Store
from publisher.store import cluster as sql

log = logging.getLogger("publisher.daemon")
LONGEST_SLEEP = 30.0  # seconds: a clock that jumps, or a frozen test clock, is looked at again soon
Slots = Callable[[datetime, datetime], datetime | None]  # (after, now) -> the newest slot in (after, now]
Following = Callable[[datetime], datetime | None]  # now -> the next slot after now


@dataclass
class Schedule:
    task: str
    lock: str | None
    newest: Slots
    following: Following
    after: datetime  # slots up to this one are done (or were before the cluster began)
    key: str | None = None  # the periodic id and queueing lock, when not the task's name (a digest's)
    args: dict[str, str] = field(default_factory=dict)  # the job's arguments beside the slot's timestamp


def cron(trigger: crontab.WallClockCron) -> tuple[Slots, Following]:
    def newest(after: datetime, now: datetime) -> datetime | None:
        found = None
        fire = trigger.get_next_fire_time(None, after + timedelta(seconds=1))
        while fire is not None and fire <= now:
            found = fire
            fire = trigger.get_next_fire_time(None, fire + timedelta(seconds=1))
        return found

    def following(now: datetime) -> datetime | None:
        fire: datetime | None = trigger.get_next_fire_time(None, now + timedelta(seconds=1))
        return fire

    return newest, following


def every(seconds: int) -> tuple[Slots, Following]:
    """Slots every ``seconds``, counted from the Unix epoch: every daemon computes the same ones."""

    def newest(after: datetime, now: datetime) -> datetime | None:
        slot = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
        return slot if slot > after else None

    def following(now: datetime) -> datetime | None:
        return datetime.fromtimestamp((int(now.timestamp()) // seconds + 1) * seconds, UTC)

    return newest, following


class Deferrer:
    def __init__(self, store: Store, schedules: list[Schedule]) -> None:
        self.store = store
        self.schedules = schedules

    async def run(self, first_pass: asyncio.Event) -> None:
        """Offer every due slot, then sleep until the next one; forever (cancel to stop)."""
        while True:
            now = clock.now()
            try:
                for schedule in self.schedules:
                    slot = schedule.newest(schedule.after, now)
                    if slot is not None:
                        await self._offer(schedule, slot)
                        schedule.after = slot
            except Exception as exc:  # the database gone for a moment: the next pass tries again
                log.error("daemon: cannot queue the scheduled jobs: %s", exc, extra={"job": "deferrer"})
            first_pass.set()
            await asyncio.sleep(self._sleep(now))

    def _sleep(self, now: datetime) -> float:
        upcoming = [fire for s in self.schedules if (fire := s.following(now)) is not None]
        if not upcoming:
            return LONGEST_SLEEP
        # clock.now() is whole seconds: the fraction of this second has passed already.
        seconds = (min(upcoming) - now).total_seconds() - (time.time() % 1) + 0.01
        return min(max(seconds, 0.05), LONGEST_SLEEP)

    async def _offer(self, schedule: Schedule, slot: datetime) -> None:
        stamp = int(slot.timestamp())
        job_id = await asyncio.to_thread(
            sql.defer_slot, self.store, schedule.task, schedule.lock, stamp, schedule.key, **schedule.args
        )
        if job_id is not None:
            log.debug("%s: slot %s queued as job %s", schedule.key or schedule.task, slot.isoformat(), job_id)
