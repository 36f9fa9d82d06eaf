"""Crontab lines (``[digest] schedule``) as APScheduler 3.x triggers, with crontab's weekdays.

APScheduler 3.x numbers weekdays from Monday = 0 (its issue 286), crontab from Sunday = 0,
so ``0 7 * * 1`` would fire on Tuesdays; numeric weekdays are passed on as names instead.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbers: 0 (and 7) is Sunday


def trigger(schedule: str, timezone: ZoneInfo) -> CronTrigger:
    """``"0 7 * * 1"`` -> a trigger firing Mondays at 07:00 in ``timezone``; raises ValueError."""
    fields = schedule.split()
    if len(fields) == 5:
        fields[4] = _crontab_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


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
