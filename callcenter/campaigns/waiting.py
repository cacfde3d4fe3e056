"""Why a campaign is not sending right now, in one code and a few parameters.

Pure: the caller gathers the campaign's status, its backlog and the clock; the staff page
words the reason through the message catalogue, the CLI in English, from the same
``MESSAGES``. Parameters are ready to show (local times, grouped digits), the same in
every language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from callcenter.campaigns.quiet import quiet_until
from callcenter.messages import N_

Code = Literal[
    "quiet_hours",
    "rate_limited",
    "gateway_failing",
    "inquiry_paused",
    "campaign_paused",
    "scheduled",
    "planning",
    "done",
]

#: code -> the English message id (its parameters are the reason's ``params``)
MESSAGES: Final[dict[Code, str]] = {
    "quiet_hours": N_("Quiet hours: sending resumes at %(until)s (Tripoli time)."),
    "rate_limited": N_(
        "Sending at %(rate)s messages a second: %(remaining)s still to send, done around %(eta)s."
    ),
    "gateway_failing": N_(
        "The SMS gateway is failing: %(retrying)s messages wait for another try, the next at %(next)s."
    ),
    "inquiry_paused": N_("The inquiry is paused: resume the inquiry to go on."),
    "campaign_paused": N_("Paused: nothing is sent until the campaign is resumed."),
    "scheduled": N_("Scheduled: the campaign starts on %(start)s (Tripoli time)."),
    "planning": N_("Planning: the list of citizens to contact is being drawn up."),
    "done": N_("Done: every citizen in the audience has been contacted."),
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: Code
    params: Mapping[str, str] = field(default_factory=dict)

    def text(self, translate: Callable[[str], str] = str) -> str:
        """The reason in words: ``translate`` turns the English message id into the reader's
        language (the web app's ``gettext``); the CLI keeps the English."""
        return translate(MESSAGES[self.code]) % dict(self.params)

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is left of a campaign's outbox."""

    remaining: int = 0  # pending or being sent
    retrying: int = 0  # of which pending rows waiting for another try after a temporary failure
    next_retry_at: datetime | None = None

    @property
    def moving(self) -> int:
        """Rows due now or being sent: what the rate limit paces."""
        return self.remaining - self.retrying


def reason(
    *,
    status: str,
    backlog: Backlog,
    now: datetime,
    quiet: tuple[time | None, time | None],
    rate_per_s: float | None,
    inquiry_status: str,
    scheduled_at: datetime | None = None,
    planning: bool = False,
    timezone: str = "Africa/Tripoli",
) -> Reason | None:
    """The reason the campaign waits, or None when it is not waiting (sending as fast as it
    may, a draft nobody started, cancelled)."""
    zone = ZoneInfo(timezone)
    if status == "done":
        return Reason("done")
    if status == "paused":
        return Reason("campaign_paused")
    if status == "draft":
        if planning:
            return Reason("planning")
        if inquiry_status == "scheduled" and scheduled_at is not None:
            return Reason("scheduled", {"start": _local(scheduled_at, zone, now, always_date=True)})
        return None
    if status != "running" or backlog.remaining <= 0:
        return None
    if inquiry_status == "paused":
        return Reason("inquiry_paused")
    until = quiet_until(now, *quiet, timezone=timezone)
    if until is not None:
        return Reason("quiet_hours", {"until": until.astimezone(zone).strftime("%H:%M")})
    if backlog.retrying > 0 and backlog.moving <= 0 and backlog.next_retry_at is not None:
        return Reason(
            "gateway_failing",
            {"retrying": f"{backlog.retrying:,}", "next": _local(backlog.next_retry_at, zone, now)},
        )
    if rate_per_s and rate_per_s > 0 and backlog.moving > 0:
        eta = now + timedelta(seconds=backlog.remaining / rate_per_s)
        return Reason(
            "rate_limited",
            {"rate": f"{rate_per_s:g}", "remaining": f"{backlog.remaining:,}", "eta": _local(eta, zone, now)},
        )
    return None


def _local(moment: datetime, zone: ZoneInfo, now: datetime, *, always_date: bool = False) -> str:
    """``HH:MM`` on the same local day as ``now``, else with the date."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    if not always_date and local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")
