"""Crontab lines (``[digest] schedule``) as APScheduler 3.x triggers, with crontab's weekdays.

APScheduler 3.x numbers weekdays from Monday = 0 (its issue 286), crontab from Sunday = 0,
so ``0 7 * * 1`` would fire on Tuesdays; numeric weekdays are passed on as names instead.

On the night clocks go back, a wall time such as 02:30 happens twice; APScheduler 3.x fires at
both, cron once. :class:`WallClockCron` skips the second one, unless the hour is ``*`` (a job
that runs every hour runs in the repeated hour too, as under cron).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbers: 0 (and 7) is Sunday


class WallClockCron(CronTrigger):  # type: ignore[misc]  # apscheduler has no type hints
    """A CronTrigger that fires once per wall-clock slot, as cron does, on DST fall-back nights."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and self._repeated(fire):
            # Through UTC: arithmetic on an aware local time is wall-clock and would drop the fold.
            later = (fire.astimezone(UTC) + timedelta(seconds=1)).astimezone(self.timezone)
            fire = super().get_next_fire_time(fire, later)
        return fire

    def _repeated(self, fire: datetime) -> bool:
        """True for the second of two instants with the same wall time (fold=1), in a fixed hour."""
        hour_is_wild = str(self.fields[5]) == "*"
        wall = fire.replace(tzinfo=None)
        first, second = (wall.replace(tzinfo=self.timezone, fold=fold) for fold in (0, 1))
        ambiguous = first.utcoffset() != second.utcoffset()
        return ambiguous and not hour_is_wild and fire.utcoffset() == second.utcoffset()


def trigger(schedule: str, timezone: ZoneInfo) -> WallClockCron:
    """``"0 7 * * 1"`` -> a trigger firing Mondays at 07:00 in ``timezone``; raises ValueError.

    A sixth field is the second, as croniter (and so Procrastinate) reads it:
    ``"* * * * * */5"`` fires every five seconds (a fast schedule, for trying a cluster out).
    """
    fields = schedule.split()
    if len(fields) not in (5, 6):
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5 (or 6, with seconds last)")
    minute, hour, day, month, weekdays = fields[:5]
    # Only a sixth field names the second: a saved five-field trigger must read the same (scheduler).
    seconds = {"second": fields[5]} if len(fields) == 6 else {}
    return WallClockCron(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekdays),
        timezone=timezone,
        **seconds,
    )


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field in APScheduler's terms: ``1-5`` -> ``mon,tue,wed,thu,fri``."""
    if not any(char.isdigit() for char in field):
        return field  # "*" and names (mon-fri, sat/2) mean the same to both
    days: set[int] = set()
    for item in field.lower().split(","):
        span, slash, step_text = item.partition("/")
        step = int(step_text) if slash else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, _, high = span.partition("-")
            first, last = _crontab_day(low), _crontab_day(high)
        else:
            first = _crontab_day(span)
            last = 7 if slash else first  # "1/2" is "from Monday on, every other day"
        if step < 1 or first > last:
            raise ValueError(f"bad day of week {item!r}")
        days.update(day % 7 for day in range(first, last + 1, step))
    return "*" if len(days) == 7 else ",".join(_CRON_DAYS[day] for day in sorted(days))


def _crontab_day(text: str) -> int:
    if text in _CRON_DAYS:
        return _CRON_DAYS.index(text)
    if text.isdigit() and int(text) <= 7:
        return int(text)
    raise ValueError(f"bad day of week {text!r}")
