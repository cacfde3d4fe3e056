"""AAPOR dispositions of the engine's cases and the outcome rates, on a hand-computed example,
the edges of ``e`` and the empty case."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.analysis.aapor import (
    DISPOSITIONS,
    AaporError,
    Case,
    Contact,
    Counts,
    Disposition,
    Situation,
    classify,
    disposition,
    eligibility_rate,
    rates,
)

D = Disposition
S = Situation

# --- the rates ----------------------------------------------------------------------

# The example of the outcomerate R package's README (12 cases), with its published rates
EXAMPLE = Counts(i=4, p=2, r=1, nc=1, o=1, uh=1, uo=1, ne=1)


def test_the_rates_of_a_hand_computed_example() -> None:
    e = eligibility_rate(EXAMPLE)  # (4+2+1+1+1) / (4+2+1+1+1+1) = 9/10
    assert e == pytest.approx(0.9)
    found = rates(EXAMPLE, e=e)
    f = Fraction
    # I+P = 6, R+NC+O = 3, UH+UO = 2, e(UH+UO) = 1.8, (I+P)+R+O = 8
    by_hand = {
        "rr1": f(4, 11), "rr2": f(6, 11),
        "rr3": f(4) / f(108, 10), "rr4": f(6) / f(108, 10),
        "rr5": f(4, 9), "rr6": f(6, 9),
        "coop1": f(4, 8), "coop2": f(6, 8), "coop3": f(4, 7), "coop4": f(6, 7),
        "ref1": f(1, 11), "ref2": f(1) / f(108, 10), "ref3": f(1, 9),
        "con1": f(8, 11), "con2": f(8) / f(108, 10), "con3": f(8, 9),
    }  # fmt: skip
    for name, value in by_hand.items():
        assert getattr(found, name) == pytest.approx(float(value)), name
    # outcomerate's README prints them to three places
    published = [0.364, 0.545, 0.370, 0.556, 0.444, 0.667, 0.500, 0.750, 0.571, 0.857, 0.091, 0.093]
    published += [0.111, 0.727, 0.741, 0.889]
    assert [round(getattr(found, name) or 0, 3) for name in by_hand] == published


def test_with_no_cases_no_rate_is_computable() -> None:
    found = rates(Counts(), e=0.5)
    assert all(v is None for k, v in found.to_json().items() if k != "e")
    assert eligibility_rate(Counts()) is None


def test_with_e_zero_the_e_rates_drop_the_unknowns() -> None:
    found = rates(EXAMPLE, e=0)
    assert found.rr3 == found.rr5 and found.rr4 == found.rr6
    assert found.ref2 == found.ref3 and found.con2 == found.con3


def test_with_e_one_the_e_rates_count_every_unknown() -> None:
    found = rates(EXAMPLE, e=1)
    assert found.rr3 == found.rr1 and found.rr4 == found.rr2
    assert found.ref2 == found.ref1 and found.con2 == found.con1


def test_without_e_only_the_e_rates_are_missing() -> None:
    found = rates(EXAMPLE, e=None)
    assert (found.rr3, found.rr4, found.ref2, found.con2) == (None, None, None, None)
    assert found.rr1 == pytest.approx(4 / 11)


def test_only_unknown_cases_with_e_zero_leave_the_e_rates_not_computable() -> None:
    found = rates(Counts(uh=5, uo=2), e=0)
    assert found.rr1 == 0 and found.con1 == 0
    assert found.rr3 is None and found.rr5 is None and found.coop1 is None and found.con3 is None


def test_no_known_ineligibles_give_an_eligibility_rate_of_one() -> None:
    assert eligibility_rate(Counts(i=3, uh=10)) == 1


@pytest.mark.parametrize("e", [-0.1, 1.5, math.nan])
def test_an_e_that_is_not_a_share_is_refused(e: float) -> None:
    with pytest.raises(AaporError) as caught:
        rates(EXAMPLE, e=e)
    assert caught.value.error_id == "aapor_bad_input"


@pytest.mark.parametrize("bad", [{"i": -1}, {"r": math.inf}, {"nc": math.nan}])
def test_counts_that_are_not_counts_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(AaporError):
        Counts(**bad)


def test_counts_tally_dispositions_and_show_aapor_codes() -> None:
    counts = Counts.of([D.COMPLETE, D.COMPLETE, D.UNKNOWN_REACH, D.REFUSAL, D.NOT_ELIGIBLE])
    assert counts == Counts(i=2, r=1, uh=1, ne=1)
    assert counts.to_json() == {"I": 2, "P": 0, "R": 1, "NC": 0, "O": 0, "UH": 1, "UO": 0, "NE": 1}
    assert set(rates(counts, e=1).to_json()) >= {"e", "RR1", "COOP4", "REF3", "CON3"}


count = st.integers(0, 50)


@given(st.builds(Counts, i=count, p=count, r=count, nc=count, o=count, uh=count, uo=count, ne=count))
def test_rates_are_shares_and_ordered_as_their_definitions_say(counts: Counts) -> None:
    e = eligibility_rate(counts)
    found = rates(counts, e=e if e is not None else 1.0)
    values = {k: v for k, v in found.to_json().items() if k != "e" and v is not None}
    assert all(0 <= v <= 1 for v in values.values())

    def le(a: str, b: str) -> None:
        if a in values and b in values:
            assert values[a] <= values[b] + 1e-12

    for low, high in [("RR1", "RR3"), ("RR3", "RR5"), ("RR2", "RR4"), ("RR4", "RR6"), ("RR1", "RR2")]:
        le(low, high)
    for low, high in [("CON1", "CON2"), ("CON2", "CON3"), ("COOP1", "COOP2"), ("COOP1", "COOP3")]:
        le(low, high)
    le("REF1", "REF2")
    le("REF2", "REF3")


# --- the dispositions ---------------------------------------------------------------

SMS: Literal["sms"] = "sms"
VOICE: Literal["voice"] = "voice"


def sms(status: str) -> Contact:
    return Contact(SMS, status)


def call(outcome: str | None, status: str = "failed") -> Contact:
    return Contact(VOICE, status, outcome)


@pytest.mark.parametrize(
    ("case", "situation", "unconfirmed", "confirmed"),
    [
        (
            Case((sms("delivered"),), session="completed", answered=4, questions=4),
            S.COMPLETED,
            D.COMPLETE,
            D.COMPLETE,
        ),
        (
            Case((sms("delivered"),), session="active", answered=2, questions=4),
            S.PARTIAL,
            D.PARTIAL,
            D.PARTIAL,
        ),
        (Case((sms("delivered"),), session="opted_out", replied=True), S.OPTED_OUT, D.REFUSAL, D.REFUSAL),
        (Case((sms("skipped"),)), S.STANDING_OPT_OUT, D.REFUSAL, D.REFUSAL),
        (
            Case((sms("delivered"),), session="active", replied=True),
            S.ENGAGED_NO_ANSWER,
            D.REFUSAL,
            D.REFUSAL,
        ),
        (Case((call("answered", "delivered"),)), S.ENGAGED_NO_ANSWER, D.REFUSAL, D.REFUSAL),
        (Case((call("answered", "delivered"),), callback=True), S.CALLBACK, D.OTHER, D.OTHER),
        (Case((sms("delivered"),)), S.SMS_DELIVERED, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((sms("sent"),)), S.SMS_SENT, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((sms("failed"),)), S.SMS_FAILED, D.UNKNOWN_OTHER, D.NON_CONTACT),
        (Case((call("machine", "sent"),)), S.VOICE_MACHINE, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((call("no_answer"),)), S.VOICE_NO_ANSWER, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((call("busy"),)), S.VOICE_BUSY, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((call("congestion"),)), S.VOICE_CONGESTION, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((call("failed"),)), S.VOICE_FAILED, D.UNKNOWN_OTHER, D.NON_CONTACT),
        (Case((call(None, "failed"),)), S.VOICE_FAILED, D.UNKNOWN_OTHER, D.NON_CONTACT),
        (Case((call("no_answer", "pending"),)), S.VOICE_NO_ANSWER, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((sms("pending"),)), S.NOT_ATTEMPTED, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case((sms("cancelled"), call(None, "sending"))), S.NOT_ATTEMPTED, D.UNKNOWN_REACH, D.NON_CONTACT),
        (Case(), S.NOT_ATTEMPTED, D.UNKNOWN_REACH, D.NON_CONTACT),
    ],
)
def test_each_engine_outcome_gets_its_disposition(
    case: Case, situation: Situation, unconfirmed: Disposition, confirmed: Disposition
) -> None:
    assert classify(case) is situation
    assert disposition(case) is unconfirmed
    assert disposition(replace(case, number_confirmed=True)) is confirmed


def test_a_delivered_sms_without_a_reply_is_unknown_eligibility_not_a_non_contact() -> None:
    assert disposition(Case((sms("delivered"),))) is D.UNKNOWN_REACH


def test_an_interview_beats_a_later_stop() -> None:
    stopped = Case((sms("delivered"),), session="opted_out", answered=2, questions=3, replied=True)
    assert disposition(stopped) is D.PARTIAL  # two answers, then STOP: the answers still count
    completed = Case((sms("delivered"),), session="completed", answered=3, questions=3, callback=True)
    assert disposition(completed) is D.COMPLETE


def test_a_contact_on_one_channel_beats_a_failure_on_the_other() -> None:
    case = Case((call("failed"), sms("delivered")))
    assert classify(case) is S.SMS_DELIVERED
    case = Case((call("no_answer"), sms("failed")))
    assert classify(case) is S.VOICE_NO_ANSWER


def test_answers_under_the_partial_threshold_are_a_break_off() -> None:
    case = Case((sms("delivered"),), session="active", answered=1, questions=5, replied=True)
    assert disposition(case) is D.PARTIAL
    assert classify(case, partial_min_share=0.5) is S.BREAK_OFF
    assert disposition(case, partial_min_share=0.5) is D.REFUSAL
    assert disposition(case, partial_min_share=0.2) is D.PARTIAL


def test_the_mapping_table_has_one_row_per_situation_in_precedence_order() -> None:
    assert [rule.situation for rule in DISPOSITIONS] == list(Situation)
    assert all(rule.evidence for rule in DISPOSITIONS)
    # a confirmed number only ever turns unknown eligibility into a non-contact
    for rule in DISPOSITIONS:
        if rule.disposition is not rule.confirmed:
            assert rule.disposition in (D.UNKNOWN_REACH, D.UNKNOWN_OTHER) and rule.confirmed is D.NON_CONTACT


@pytest.mark.parametrize("contact", [Contact(SMS, "exploded"), call("ringing"), call(None, "delivered")])
def test_an_outcome_the_engine_does_not_have_is_refused(contact: Contact) -> None:
    with pytest.raises(AaporError):
        disposition(Case((contact,)))


def test_a_partial_threshold_that_is_not_a_share_is_refused() -> None:
    with pytest.raises(AaporError):
        classify(Case(), partial_min_share=2)
