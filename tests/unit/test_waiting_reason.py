"""Why a campaign waits: every reason, the order they are checked in, and the clock's edges."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callcenter.campaigns.waiting import MESSAGES, Backlog, Reason, reason

TRIPOLI = ZoneInfo("Africa/Tripoli")  # UTC+2 all year
NIGHT = (time(21, 0), time(8, 0))
NO_QUIET: tuple[time | None, time | None] = (None, None)
SENDING = Backlog(remaining=1200)


def at(hour: int, minute: int = 0, day: int = 10) -> datetime:
    """A moment given in Tripoli time."""
    return datetime(2025, 6, day, hour, minute, tzinfo=TRIPOLI).astimezone(UTC)


def why(
    status: str = "running",
    *,
    backlog: Backlog = SENDING,
    now: datetime | None = None,
    quiet: tuple[time | None, time | None] = NIGHT,
    rate: float | None = 0,
    inquiry: str = "running",
    scheduled_at: datetime | None = None,
    planning: bool = False,
) -> Reason | None:
    return reason(
        status=status,
        backlog=backlog,
        now=now or at(12),
        quiet=quiet,
        rate_per_s=rate,
        inquiry_status=inquiry,
        scheduled_at=scheduled_at,
        planning=planning,
    )


def test_a_running_campaign_at_night_waits_for_the_end_of_the_quiet_hours() -> None:
    found = why(now=at(23, 30))
    assert found == Reason("quiet_hours", {"until": "08:00"})
    assert found.text() == "Quiet hours: sending resumes at 08:00 (Tripoli time)."


def test_quiet_hours_across_midnight_hold_after_midnight_too() -> None:
    assert why(now=at(0, 30)) == Reason("quiet_hours", {"until": "08:00"})
    assert why(now=at(7, 59)) == Reason("quiet_hours", {"until": "08:00"})


def test_at_exactly_eight_the_quiet_hours_are_over() -> None:
    assert why(now=at(8, 0)) is None  # no rate limit: sending as fast as the gateway takes


def test_at_exactly_nine_in_the_evening_the_quiet_hours_begin() -> None:
    assert why(now=at(20, 59)) is None
    assert why(now=at(21, 0)) == Reason("quiet_hours", {"until": "08:00"})


def test_quiet_hours_within_one_day_end_the_same_day() -> None:
    siesta = (time(13, 0), time(15, 30))
    assert why(now=at(14), quiet=siesta) == Reason("quiet_hours", {"until": "15:30"})
    assert why(now=at(15, 30), quiet=siesta) is None


def test_no_quiet_hours_means_none() -> None:
    assert why(now=at(3), quiet=NO_QUIET) is None
    assert why(now=at(3), quiet=(time(8), time(8))) is None


def test_a_rate_limited_campaign_says_how_long_is_left() -> None:
    found = why(rate=20, backlog=Backlog(remaining=12_000), now=at(10))
    # 12,000 messages at 20 a second: 600 s
    assert found == Reason("rate_limited", {"rate": "20", "remaining": "12,000", "eta": "10:10"})
    assert "20 messages a second" in found.text() and "12,000" in found.text()


def test_a_rate_limited_campaign_ending_tomorrow_gives_the_date() -> None:
    found = why(rate=0.5, backlog=Backlog(remaining=86_400), now=at(10))
    assert found is not None and found.params["eta"] == "2025-06-12 10:00"
    assert found.params["rate"] == "0.5"


def test_failing_gateway_retries_are_shown_with_the_next_attempt() -> None:
    backlog = Backlog(remaining=40, retrying=40, next_retry_at=at(12, 5))
    found = why(backlog=backlog, rate=20)
    assert found == Reason("gateway_failing", {"retrying": "40", "next": "12:05"})
    assert "40 messages wait for another try, the next at 12:05" in found.text()


def test_retries_beside_rows_still_moving_are_not_a_failing_gateway() -> None:
    backlog = Backlog(remaining=100, retrying=40, next_retry_at=at(12, 5))  # 60 due or being sent
    found = why(backlog=backlog, rate=20)
    assert found is not None and found.code == "rate_limited"
    assert why(backlog=backlog, rate=0) is None


def test_a_paused_inquiry_holds_a_running_campaign() -> None:
    assert why(inquiry="paused", now=at(23)) == Reason("inquiry_paused")


def test_a_paused_campaign_says_so_even_at_night() -> None:
    assert why("paused", now=at(23)) == Reason("campaign_paused")


def test_a_draft_being_planned_is_planning() -> None:
    assert why("draft", planning=True, backlog=Backlog()) == Reason("planning")


def test_a_draft_of_a_scheduled_inquiry_gives_the_start_time() -> None:
    found = why("draft", inquiry="scheduled", scheduled_at=at(9, 30, day=11), backlog=Backlog())
    assert found == Reason("scheduled", {"start": "2025-06-11 09:30"})


def test_a_draft_nobody_started_is_not_waiting() -> None:
    assert why("draft", backlog=Backlog()) is None


def test_done_and_cancelled() -> None:
    assert why("done", backlog=Backlog()) == Reason("done")
    assert why("cancelled", backlog=Backlog()) is None


def test_a_running_campaign_with_nothing_left_is_not_waiting() -> None:
    assert why(backlog=Backlog(), now=at(23)) is None


def test_naive_times_are_taken_as_utc() -> None:
    naive = (at(12, 5)).replace(tzinfo=None)
    found = why(backlog=Backlog(remaining=1, retrying=1, next_retry_at=naive))
    assert found == Reason("gateway_failing", {"retrying": "1", "next": "12:05"})


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_reason_has_words_whose_parameters_it_fills(code: str) -> None:
    params = {"until": "08:00", "rate": "5", "remaining": "10", "eta": "10:00", "retrying": "3", "next": "x"}
    params |= {"start": "2025-06-11 09:30"}
    text = Reason(code, params).text()  # type: ignore[arg-type]
    assert "%(" not in text and text.endswith(".")


def test_the_reason_is_json_for_the_live_event() -> None:
    assert Reason("quiet_hours", {"until": "08:00"}).to_json() == {
        "code": "quiet_hours",
        "params": {"until": "08:00"},
    }
