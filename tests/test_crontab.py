"""[digest] schedule uses crontab's weekday numbers (Sunday is 0 and 7), not APScheduler's."""

from __future__ import annotations

from datetime import datetime
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
