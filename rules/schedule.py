"""Is a rule's schedule open at an instant? Local wall-clock time in the schedule's IANA zone."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from bus.rulespec import WEEKDAYS, Schedule


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_open(schedule: Schedule, at: datetime) -> bool:
    """`from` inclusive, `to` exclusive, in local time; DST is the zone's (zoneinfo's) business.

    A window that crosses midnight (to < from) belongs to the day it starts on, so
    "fri 22:00–06:00" is open on Saturday at 03:00 and closed on Friday at 03:00.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    local = at.astimezone(_zone(schedule.timezone))
    t = local.time().replace(tzinfo=None)
    day = local.weekday()
    start, end = schedule.start, schedule.end
    if start < end:
        return start <= t < end and WEEKDAYS[day] in schedule.weekdays
    if t >= start:
        return WEEKDAYS[day] in schedule.weekdays
    if t < end:
        return WEEKDAYS[(day - 1) % 7] in schedule.weekdays
    return False
