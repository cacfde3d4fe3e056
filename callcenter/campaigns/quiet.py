"""Quiet hours: no citizen is messaged or called at night (local time, Africa/Tripoli)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_hhmm(value: str | None) -> time | None:
    if not value:
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(
    now: datetime, start: time | None, end: time | None, *, timezone: str = "Africa/Tripoli"
) -> datetime | None:
    """When the quiet window around ``now`` ends (aware UTC-comparable), or None if not quiet.

    The window may cross midnight (21:00-08:00) or not (13:00-15:00); start == end or a
    missing bound means no quiet hours.
    """
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    crosses_midnight = start > end
    quiet = (t >= start or t < end) if crosses_midnight else (start <= t < end)
    if not quiet:
        return None
    day = local.date()
    if crosses_midnight and t >= start:
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)
