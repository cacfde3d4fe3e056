"""What the result of one outbound call means for its delivery: the outcome, whether the
delivery is final or tried again, and when.

Pure: values in, values out (no clock, no I/O). The dialer feeds it the ``Reason`` of an
``OriginateResponse`` (or an AMD verdict) and writes the :class:`Decision` to the outbox.

Asterisk's ``Reason`` is the last control frame the outgoing channel saw before Originate
gave up (``AST_CONTROL_*`` in ``frame.h``)::

    0  the channel could not be created or failed (no route, bad number)   -> failed
    1  AST_CONTROL_HANGUP: hung up / rejected before answering            -> no_answer
    2  AST_CONTROL_RING: local ring, gave up                               -> no_answer
    3  AST_CONTROL_RINGING: rang until the Originate timeout               -> no_answer
    4  AST_CONTROL_ANSWER                                                  -> answered
    5  AST_CONTROL_BUSY (campaign-dial turns a 486 into it)                -> busy
    8  AST_CONTROL_CONGESTION (campaign-dial: CONGESTION / CHANUNAVAIL)    -> congestion
    anything else                                                          -> failed
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from callcenter.campaigns.quiet import quiet_until


class Outcome(StrEnum):
    """``Delivery.outcome`` / ``Call.outcome`` of one try."""

    ANSWERED = "answered"  # final: the citizen picked up and the IVR ran the inquiry
    MACHINE = "machine"  # final: AMD heard a machine; calling a machine again only fills it up
    NO_ANSWER = "no_answer"  # retried after voice_retry_after_s
    BUSY = "busy"  # retried after half the delay: the citizen is on the phone right now
    CONGESTION = "congestion"  # retried after a quarter: the network, not the citizen
    FAILED = "failed"  # retried once: a bad number or a refused Originate tends to repeat


REASONS: dict[int, Outcome] = {
    0: Outcome.FAILED,
    1: Outcome.NO_ANSWER,
    2: Outcome.NO_ANSWER,
    3: Outcome.NO_ANSWER,
    4: Outcome.ANSWERED,
    5: Outcome.BUSY,
    8: Outcome.CONGESTION,
}


def from_reason(reason: str | int | None) -> Outcome:
    """The outcome of an ``OriginateResponse`` ``Reason`` header (unknown or missing: failed)."""
    try:
        code = int(reason) if reason is not None else -1
    except ValueError:
        code = -1
    return REASONS.get(code, Outcome.FAILED)


def from_amd(status: str | None) -> Outcome | None:
    """``AMDSTATUS`` of the ``CallCenterAMD`` UserEvent: MACHINE is a machine; HUMAN, NOTSURE
    and HANGUP leave the call as it is (answered, or whatever the Originate says)."""
    return Outcome.MACHINE if (status or "").upper() == "MACHINE" else None


@dataclass(frozen=True, slots=True)
class Rule:
    #: the delivery status when this outcome ends it
    final_status: str = "failed"
    #: None: never retried; else the retry delay as a share of voice_retry_after_s
    retry_factor: float | None = 1.0
    #: a cap of its own on top of the campaign's max_attempts (None: only max_attempts)
    max_tries: int | None = None


RULES: dict[Outcome, Rule] = {
    Outcome.ANSWERED: Rule(final_status="delivered", retry_factor=None),
    # "sent": the call reached a device but no person (cf. an SMS without a delivery report)
    Outcome.MACHINE: Rule(final_status="sent", retry_factor=None),
    Outcome.NO_ANSWER: Rule(retry_factor=1.0),
    Outcome.BUSY: Rule(retry_factor=0.5),
    Outcome.CONGESTION: Rule(retry_factor=0.25),
    # a failure on the first try is tried once more; on a later try it ends the delivery
    Outcome.FAILED: Rule(retry_factor=1.0, max_tries=2),
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    status: str  # delivered | sent | failed (final) | pending (retried at next_attempt_at)
    next_attempt_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status != "pending"


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    now: datetime,
    retry_after_s: float,
    quiet: tuple[time | None, time | None] = (None, None),
    timezone: str = "Africa/Tripoli",
) -> Decision:
    """The delivery's fate after try number ``attempt`` (1-based) ended with ``outcome``.

    A retry waits ``retry_after_s`` times the outcome's factor; when that lands in the
    campaign's quiet hours it waits for their end instead. ``next_attempt_at`` is in UTC.
    """
    rule = RULES[outcome]
    limit = max_attempts if rule.max_tries is None else min(max_attempts, rule.max_tries)
    if rule.retry_factor is None or attempt >= limit:
        return Decision(outcome, rule.final_status)
    delay = max(0.0, retry_after_s * rule.retry_factor)
    at = now + timedelta(seconds=delay)
    quiet_end = quiet_until(at, *quiet, timezone=timezone)
    # in UTC: SQLite keeps the wall-clock fields only
    return Decision(outcome, "pending", (quiet_end or at).astimezone(UTC))
