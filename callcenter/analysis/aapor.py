"""AAPOR final dispositions of this engine's cases, and the AAPOR outcome rates.

Pure: values in, values out. AAPOR's *Standard Definitions: Final Dispositions of Case Codes
and Outcome Rates for Surveys* (10th edition, 2023) sorts every sampled case into
interviews (I complete, P partial), eligible non-interviews (R refusal and break-off, NC
non-contact, O other), unknown eligibility (UH, UO) and not eligible (NE), and defines the
rates below on the counts.

**The case.** One citizen drawn into an inquiry, however many SMS and calls they got (a
mixed-mode case has one final disposition). :func:`classify` reads what the engine knows of
it (:class:`Case`: the deliveries' status and voice outcome, the inquiry session, the
answers) and names a :class:`Situation`; :data:`DISPOSITIONS` is the one table from a
situation to a disposition, in precedence order (the first situation that applies decides:
an interview beats a refusal, a contact beats a non-contact, more information beats less).
The app shows that table as the method note.

**Why the non-contacts are mostly "unknown eligibility".** The register says who is eligible
(a citizen of the audience); what nobody knows is whether the phone number on file still
reaches that citizen. That is the question AAPOR's unknown-eligibility codes ask of a
number, and its telephone tables put "always busy", "no answer" and "answering machine,
don't know if eligible" under unknown eligibility, keeping non-contact (NC) for cases
*known* to be eligible that were never reached. For SMS, AAPOR's guidance for Internet
surveys of specifically named persons applies: an invitation from which "nothing is ever
returned" is unknown eligibility, and so is an invitation returned undelivered. A delivery
report says a handset accepted the message, not that the citizen read it or that the
handset is theirs, so "delivered, no reply" is UH, not NC. We split unknown eligibility
into UH (nothing learned: delivered or sent without a reply, rings, busy, machine,
congestion, never attempted) and UO (the attempt positively failed: undelivered SMS, failed
call); every rate adds UH and UO, so the split only shows in the table.

When the number is *confirmed* to be the citizen's (``Case.number_confirmed``: they have
replied from it or answered a call on it before), eligibility is known and those same
situations are NC, AAPOR's eligible non-contact. The table has a column for each.

**Contacts.** A STOP during the inquiry is an explicit refusal (R). A citizen who replied or
picked up and answered nothing broke off before the first question (AAPOR's implicit
refusal, "logged on, no items completed": R). A delivery skipped because the citizen had
opted out earlier is a standing refusal (R); if the audience already leaves opted-out
citizens out, those never become cases. A callback asked for and never turned into an
interview is "other" (O): eligible, contacted, neither refused nor interviewed. A session
the engine completed is I; one with answers but not completed is P (AAPOR leaves the
threshold to the researcher: with ``partial_min_share`` the cases that answered less than
that share of the questions count as break-offs, R). The engine has no outcome that shows a
citizen is not eligible (NE); the code exists so counts from elsewhere (a screener
question) fit, and for the eligibility estimate.

**Rates** (AAPOR's formulas; ``e`` is the estimated share of unknown-eligibility cases that
are eligible)::

    RR1 = I / ((I+P) + (R+NC+O) + (UH+UO))        RR2 = (I+P) / (same denominator)
    RR3 = I / ((I+P) + (R+NC+O) + e(UH+UO))       RR4 = (I+P) / (same denominator)
    RR5 = I / ((I+P) + (R+NC+O))                  RR6 = (I+P) / (same denominator)
    COOP1 = I / ((I+P) + R + O)                   COOP2 = (I+P) / ((I+P) + R + O)
    COOP3 = I / ((I+P) + R)                       COOP4 = (I+P) / ((I+P) + R)
    REF1 = R / ((I+P) + (R+NC+O) + (UH+UO))
    REF2 = R / ((I+P) + (R+NC+O) + e(UH+UO))
    REF3 = R / ((I+P) + (R+NC+O))
    CON1 = ((I+P) + R + O) / ((I+P) + R + O + NC + (UH+UO))
    CON2 = ((I+P) + R + O) / ((I+P) + R + O + NC + e(UH+UO))
    CON3 = ((I+P) + R + O) / ((I+P) + R + O + NC)

A rate whose denominator is 0 is ``None`` ("not computable"), as are the ``e`` rates when
``e`` is not given. :func:`eligibility_rate` offers AAPOR's proportional allocation,
``e = (I+P+R+NC+O) / (I+P+R+NC+O+NE)``; with no known ineligibles it is 1, the
conservative choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Literal

from callcenter.errors import CallCenterError


class AaporError(CallCenterError):
    error_id = "aapor_bad_input"


class Disposition(StrEnum):
    """AAPOR's final disposition classes (the values are AAPOR's abbreviations)."""

    COMPLETE = "I"
    PARTIAL = "P"
    REFUSAL = "R"  # refusal and break-off
    NON_CONTACT = "NC"
    OTHER = "O"
    UNKNOWN_REACH = "UH"  # unknown eligibility: nothing learned of whether the number reaches the citizen
    UNKNOWN_OTHER = "UO"  # unknown eligibility: the attempt failed (undelivered, failed call)
    NOT_ELIGIBLE = "NE"


class Situation(StrEnum):
    """What happened to a case, in the engine's terms; declared in precedence order."""

    COMPLETED = "completed"
    PARTIAL = "partial"
    BREAK_OFF = "break_off"
    OPTED_OUT = "opted_out"
    CALLBACK = "callback"
    ENGAGED_NO_ANSWER = "engaged_no_answer"
    STANDING_OPT_OUT = "standing_opt_out"
    SMS_DELIVERED = "sms_delivered"
    VOICE_MACHINE = "voice_machine"
    VOICE_NO_ANSWER = "voice_no_answer"
    VOICE_BUSY = "voice_busy"
    VOICE_CONGESTION = "voice_congestion"
    SMS_SENT = "sms_sent"
    SMS_FAILED = "sms_failed"
    VOICE_FAILED = "voice_failed"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the mapping: ``evidence`` says which stored facts make the situation (in
    the tables' own terms), ``disposition`` applies to an unconfirmed number, ``confirmed``
    when the number is known to be the citizen's."""

    situation: Situation
    channel: Literal["any", "sms", "voice"]
    evidence: str
    disposition: Disposition
    confirmed: Disposition


D = Disposition
S = Situation
#: the mapping, in precedence order: the first row whose situation applies decides
DISPOSITIONS: tuple[Rule, ...] = (
    Rule(S.COMPLETED, "any", "inquiry_session.status = completed", D.COMPLETE, D.COMPLETE),
    Rule(S.PARTIAL, "any", "answers >= 1 (>= partial_min_share), not completed", D.PARTIAL, D.PARTIAL),
    Rule(S.BREAK_OFF, "any", "answers >= 1 but < partial_min_share, not completed", D.REFUSAL, D.REFUSAL),
    Rule(S.OPTED_OUT, "any", "inquiry_session.status = opted_out (STOP), no answers", D.REFUSAL, D.REFUSAL),
    Rule(S.CALLBACK, "voice", "call.outcome = callback, no answers", D.OTHER, D.OTHER),
    Rule(
        S.ENGAGED_NO_ANSWER,
        "any",
        "replied, or delivery.outcome = answered; no answers",
        D.REFUSAL,
        D.REFUSAL,
    ),
    Rule(S.STANDING_OPT_OUT, "any", "delivery.status = skipped (opted out before)", D.REFUSAL, D.REFUSAL),
    Rule(S.SMS_DELIVERED, "sms", "delivery.status = delivered, no reply", D.UNKNOWN_REACH, D.NON_CONTACT),
    Rule(S.VOICE_MACHINE, "voice", "delivery.outcome = machine", D.UNKNOWN_REACH, D.NON_CONTACT),
    Rule(S.VOICE_NO_ANSWER, "voice", "delivery.outcome = no_answer", D.UNKNOWN_REACH, D.NON_CONTACT),
    Rule(S.VOICE_BUSY, "voice", "delivery.outcome = busy", D.UNKNOWN_REACH, D.NON_CONTACT),
    Rule(S.VOICE_CONGESTION, "voice", "delivery.outcome = congestion", D.UNKNOWN_REACH, D.NON_CONTACT),
    Rule(
        S.SMS_SENT,
        "sms",
        "delivery.status = sent (no delivery report), no reply",
        D.UNKNOWN_REACH,
        D.NON_CONTACT,
    ),
    Rule(S.SMS_FAILED, "sms", "delivery.status = failed", D.UNKNOWN_OTHER, D.NON_CONTACT),
    Rule(
        S.VOICE_FAILED,
        "voice",
        "delivery.outcome = failed (or status failed)",
        D.UNKNOWN_OTHER,
        D.NON_CONTACT,
    ),
    Rule(
        S.NOT_ATTEMPTED,
        "any",
        "no delivery, or delivery.status in pending, sending, cancelled",
        D.UNKNOWN_REACH,
        D.NON_CONTACT,
    ),
)
RULES: dict[Situation, Rule] = {rule.situation: rule for rule in DISPOSITIONS}
_PRECEDENCE = {situation: index for index, situation in enumerate(Situation)}

_SMS_STATUS = {
    "delivered": S.SMS_DELIVERED,
    "sent": S.SMS_SENT,
    "failed": S.SMS_FAILED,
    "skipped": S.STANDING_OPT_OUT,
    "pending": S.NOT_ATTEMPTED,
    "sending": S.NOT_ATTEMPTED,
    "cancelled": S.NOT_ATTEMPTED,
}
_VOICE_OUTCOME = {
    "answered": S.ENGAGED_NO_ANSWER,
    "machine": S.VOICE_MACHINE,
    "no_answer": S.VOICE_NO_ANSWER,
    "busy": S.VOICE_BUSY,
    "congestion": S.VOICE_CONGESTION,
    "failed": S.VOICE_FAILED,
}


@dataclass(frozen=True, slots=True)
class Contact:
    """One delivery (one campaign) of the inquiry to the citizen."""

    channel: Literal["sms", "voice"]
    status: str  # Delivery.status
    outcome: str | None = None  # Delivery.outcome: the last call's outcome (voice)


@dataclass(frozen=True, slots=True)
class Case:
    """What the engine knows of one citizen in one inquiry at the end of fieldwork."""

    contacts: tuple[Contact, ...] = ()
    session: str | None = None  # InquirySession.status, None when there is no session
    answered: int = 0  # questions answered (Answer rows)
    questions: int = 0  # questions in the inquiry (for partial_min_share)
    replied: bool = False  # any inbound input for the inquiry: an SMS reply or a keypress
    callback: bool = False  # a call of the inquiry ended with outcome = callback
    number_confirmed: bool = False  # the number is known to be the citizen's (see the module doc)


def classify(case: Case, *, partial_min_share: float = 0.0) -> Situation:
    """The situation of a case: the first, in :data:`DISPOSITIONS` order, that applies."""
    if not 0 <= partial_min_share <= 1:
        raise AaporError("partial_min_share is a share of the questions", partial_min_share=partial_min_share)
    found: set[Situation] = set()
    if case.session == "completed":
        found.add(S.COMPLETED)
    if case.answered > 0:
        share = case.answered / case.questions if case.questions else 1.0
        found.add(S.PARTIAL if share >= partial_min_share else S.BREAK_OFF)
    if case.session == "opted_out":
        found.add(S.OPTED_OUT)
    if case.callback:
        found.add(S.CALLBACK)
    if case.replied:
        found.add(S.ENGAGED_NO_ANSWER)
    for contact in case.contacts:
        found.add(_contact_situation(contact))
    if not found:
        return S.NOT_ATTEMPTED
    return min(found, key=_PRECEDENCE.__getitem__)


def disposition(case: Case, *, partial_min_share: float = 0.0) -> Disposition:
    """The AAPOR final disposition of a case."""
    rule = RULES[classify(case, partial_min_share=partial_min_share)]
    return rule.confirmed if case.number_confirmed else rule.disposition


def _contact_situation(contact: Contact) -> Situation:
    if contact.status == "skipped":
        return S.STANDING_OPT_OUT
    if contact.channel == "voice":
        if contact.outcome is not None:
            if contact.outcome not in _VOICE_OUTCOME:
                raise AaporError(f"unknown voice outcome {contact.outcome!r}", outcome=contact.outcome)
            return _VOICE_OUTCOME[contact.outcome]
        if contact.status == "failed":
            return S.VOICE_FAILED
        if contact.status in ("pending", "sending", "cancelled"):
            return S.NOT_ATTEMPTED
        raise AaporError(f"a voice delivery {contact.status!r} without an outcome", status=contact.status)
    if contact.channel == "sms" and contact.status in _SMS_STATUS:
        return _SMS_STATUS[contact.status]
    raise AaporError(f"unknown {contact.channel} delivery status {contact.status!r}", status=contact.status)


@dataclass(frozen=True, slots=True)
class Counts:
    """Cases per disposition (floats allow weighted counts)."""

    i: float = 0
    p: float = 0
    r: float = 0
    nc: float = 0
    o: float = 0
    uh: float = 0
    uo: float = 0
    ne: float = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AaporError(f"count {f.name} is not a number", code=f.name)
            if not math.isfinite(value) or value < 0:
                raise AaporError(f"count {f.name} = {value!r} is not a count", code=f.name)

    @classmethod
    def of(cls, dispositions: Iterable[Disposition]) -> Counts:
        tally = dict.fromkeys(("i", "p", "r", "nc", "o", "uh", "uo", "ne"), 0)
        for found in dispositions:
            tally[Disposition(found).value.lower()] += 1
        return cls(**tally)

    def to_json(self) -> dict[str, float]:
        return {f.name.upper(): getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Rates:
    """AAPOR's outcome rates; ``None``: not computable (zero denominator, or no ``e``)."""

    e: float | None
    rr1: float | None
    rr2: float | None
    rr3: float | None
    rr4: float | None
    rr5: float | None
    rr6: float | None
    coop1: float | None
    coop2: float | None
    coop3: float | None
    coop4: float | None
    ref1: float | None
    ref2: float | None
    ref3: float | None
    con1: float | None
    con2: float | None
    con3: float | None

    def to_json(self) -> dict[str, Any]:
        return {k.upper() if k != "e" else k: v for k, v in asdict(self).items()}


def eligibility_rate(counts: Counts) -> float | None:
    """AAPOR's proportional allocation: the share of cases of known eligibility that are
    eligible, ``(I+P+R+NC+O) / (I+P+R+NC+O+NE)``; None when no case's eligibility is known."""
    eligible = counts.i + counts.p + counts.r + counts.nc + counts.o
    return _ratio(eligible, eligible + counts.ne)


def rates(counts: Counts, *, e: float | None) -> Rates:
    """Every AAPOR response, cooperation, refusal and contact rate (formulas in the module
    docstring)."""
    if e is not None and not (math.isfinite(e) and 0 <= e <= 1):
        raise AaporError(f"e = {e!r} is not a share", e=e)
    c = counts
    interviews = c.i + c.p
    eligible_non = c.r + c.nc + c.o
    unknown = c.uh + c.uo
    known = interviews + eligible_non
    contacted = interviews + c.r + c.o
    all_cases = known + unknown
    with_e = None if e is None else known + e * unknown
    contact_e = None if e is None else contacted + c.nc + e * unknown
    return Rates(
        e=e,
        rr1=_ratio(c.i, all_cases),
        rr2=_ratio(interviews, all_cases),
        rr3=_ratio(c.i, with_e),
        rr4=_ratio(interviews, with_e),
        rr5=_ratio(c.i, known),
        rr6=_ratio(interviews, known),
        coop1=_ratio(c.i, interviews + c.r + c.o),
        coop2=_ratio(interviews, interviews + c.r + c.o),
        coop3=_ratio(c.i, interviews + c.r),
        coop4=_ratio(interviews, interviews + c.r),
        ref1=_ratio(c.r, all_cases),
        ref2=_ratio(c.r, with_e),
        ref3=_ratio(c.r, known),
        con1=_ratio(contacted, contacted + c.nc + unknown),
        con2=_ratio(contacted, contact_e),
        con3=_ratio(contacted, contacted + c.nc),
    )


def _ratio(numerator: float, denominator: float | None) -> float | None:
    if denominator is None or denominator <= 0:
        return None
    return numerator / denominator
