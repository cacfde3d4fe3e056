"""Originate reasons and AMD verdicts -> delivery outcomes, and which are retried when."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.voice.outcomes import Decision, Outcome, decide, from_amd, from_reason

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # 12:00 in Tripoli (UTC+2)
RETRY = 1800.0


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ("4", Outcome.ANSWERED),
        ("5", Outcome.BUSY),
        ("3", Outcome.NO_ANSWER),  # rang until the Originate timeout
        ("1", Outcome.NO_ANSWER),  # hung up / rejected before answering
        ("2", Outcome.NO_ANSWER),
        ("8", Outcome.CONGESTION),
        ("0", Outcome.FAILED),
        ("7", Outcome.FAILED),  # anything else
        ("", Outcome.FAILED),
        (None, Outcome.FAILED),
        ("x", Outcome.FAILED),
        (5, Outcome.BUSY),
    ],
)
def test_reason_to_outcome(reason: str | int | None, outcome: Outcome) -> None:
    assert from_reason(reason) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("MACHINE", Outcome.MACHINE),
        ("machine", Outcome.MACHINE),
        ("HUMAN", None),
        ("NOTSURE", None),
        (None, None),
    ],
)
def test_amd_verdict(status: str | None, outcome: Outcome | None) -> None:
    assert from_amd(status) is outcome


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("outcome", "attempt", "max_attempts", "expected"),
    [
        # final whatever the attempt
        (Outcome.ANSWERED, 1, 4, Decision(Outcome.ANSWERED, "delivered")),
        (Outcome.MACHINE, 1, 4, Decision(Outcome.MACHINE, "sent")),
        # retried, each after its own delay
        (Outcome.NO_ANSWER, 1, 4, Decision(Outcome.NO_ANSWER, "pending", at(RETRY))),
        (Outcome.BUSY, 2, 4, Decision(Outcome.BUSY, "pending", at(RETRY / 2))),
        (Outcome.CONGESTION, 3, 4, Decision(Outcome.CONGESTION, "pending", at(RETRY / 4))),
        # until max_attempts
        (Outcome.NO_ANSWER, 4, 4, Decision(Outcome.NO_ANSWER, "failed")),
        (Outcome.BUSY, 1, 1, Decision(Outcome.BUSY, "failed")),
        # failed: once more at most
        (Outcome.FAILED, 1, 4, Decision(Outcome.FAILED, "pending", at(RETRY))),
        (Outcome.FAILED, 2, 4, Decision(Outcome.FAILED, "failed")),
        (Outcome.FAILED, 1, 1, Decision(Outcome.FAILED, "failed")),
    ],
)
def test_retry_rules(outcome: Outcome, attempt: int, max_attempts: int, expected: Decision) -> None:
    decision = decide(outcome, attempt=attempt, max_attempts=max_attempts, now=NOW, retry_after_s=RETRY)
    assert decision == expected
    assert decision.final is (expected.status != "pending")


def test_a_retry_never_lands_in_quiet_hours() -> None:
    # 20:45 in Tripoli; quiet 21:00-08:00: a retry 30 min later waits for 08:00 the next day
    now = datetime(2026, 3, 10, 20, 45, tzinfo=ZoneInfo("Africa/Tripoli")).astimezone(UTC)
    decision = decide(
        Outcome.NO_ANSWER,
        attempt=1,
        max_attempts=4,
        now=now,
        retry_after_s=RETRY,
        quiet=(time(21, 0), time(8, 0)),
    )
    assert decision.status == "pending"
    assert decision.next_attempt_at == datetime(2026, 3, 11, 8, 0, tzinfo=ZoneInfo("Africa/Tripoli"))
    # outside quiet hours: the plain delay
    early = decide(
        Outcome.BUSY,
        attempt=1,
        max_attempts=4,
        now=NOW,
        retry_after_s=RETRY,
        quiet=(time(21, 0), time(8, 0)),
    )
    assert early.next_attempt_at == at(RETRY / 2)
