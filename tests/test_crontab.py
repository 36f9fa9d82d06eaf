"""[digest] schedule uses crontab's weekday numbers (Sunday is 0 and 7), not APScheduler's."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from publisher import crontab

UTC = ZoneInfo("UTC")
TUESDAY = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "weekdays"),
    [
        ("0 7 * * 1", {"Mon"}),
        ("0 7 * * 0", {"Sun"}),
        ("0 7 * * 7", {"Sun"}),
        ("0 7 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 7 * * 6,0", {"Sat", "Sun"}),
        ("0 7 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 7 * * mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 7 * * *", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_weekdays_follow_crontab(line: str, weekdays: set[str]) -> None:
    trigger = crontab.trigger(line, UTC)
    fired, after = set(), TUESDAY
    for _ in range(14):
        after = trigger.get_next_fire_time(None, after)
        fired.add(f"{after:%a}")
        after = after.replace(hour=8)
    assert fired == weekdays


@pytest.mark.parametrize("line", ["0 7 * * 8", "0 7 * * 5-1", "0 7 * *", "61 7 * * *", "0 7 * * mon/0"])
def test_bad_lines_are_refused(line: str) -> None:
    with pytest.raises(ValueError):
        crontab.trigger(line, UTC)


def _fires(line: str, zone: str, start: datetime, count: int) -> list[str]:
    """The next ``count`` fire times, each asked for as the scheduler does: after the last one."""
    tz = ZoneInfo(zone)
    trigger, previous, now, fired = crontab.trigger(line, tz), None, start, []
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, now)
        fired.append(f"{previous:%m-%d %H:%M%z}")
        now = (previous.astimezone(UTC) + timedelta(seconds=1)).astimezone(tz)
    return fired


def test_a_slot_in_the_hour_repeated_when_clocks_go_back_fires_once_as_under_cron() -> None:
    start = datetime(2026, 10, 24, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert _fires("30 2 * * *", "Europe/Berlin", start, 3) == [
        "10-25 02:30+0200",
        "10-26 02:30+0100",
        "10-27 02:30+0100",
    ]
    # Every hour (hour "*"), the repeated hour has its runs too, as under cron.
    night = datetime(2026, 10, 25, 1, 45, tzinfo=ZoneInfo("Europe/Berlin"))
    assert _fires("30 * * * *", "Europe/Berlin", night, 3) == [
        "10-25 02:30+0200",
        "10-25 02:30+0100",
        "10-25 03:30+0100",
    ]


def test_a_slot_in_the_hour_skipped_when_clocks_go_forward_fires_once() -> None:
    start = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    fired = _fires("30 2 * * *", "Europe/Berlin", start, 2)
    assert len(set(fired)) == 2 and fired[1].startswith("03-30 02:30")
