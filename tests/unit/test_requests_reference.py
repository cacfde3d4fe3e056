"""References made for the phone: unique per serial, read back whatever digits the citizen
used, and a mistyped digit or two swapped neighbours refused before any lookup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.arabic_numbers import VOCABULARY
from callcenter.requests.reference import (
    DIGITS,
    MAX_SERIAL,
    BadReference,
    Problem,
    Reference,
    arabic_indic,
    damm,
    parse,
    reference_for,
    serial_of,
    spoken_arabic,
    spoken_groups,
)

serials = st.integers(min_value=1, max_value=MAX_SERIAL)


def test_damm_known_value() -> None:
    # the worked example of Damm's algorithm: 572 -> check digit 4
    assert damm("572") == 4
    assert damm("5724") == 0


def test_a_reference_is_grouped_for_reading_out() -> None:
    ref = reference_for(1)
    assert len(ref.digits) == DIGITS
    assert ref.display == f"1415-{ref.digits[:4]}-{ref.digits[4:]}"
    assert str(ref) == ref.display


def test_consecutive_serials_do_not_look_alike() -> None:
    first, second = reference_for(1000), reference_for(1001)
    assert sum(a != b for a, b in zip(first.digits, second.digits, strict=True)) >= 3


@given(serials)
def test_every_serial_round_trips(serial: int) -> None:
    ref = reference_for(serial)
    assert serial_of(ref) == serial
    assert parse(ref.display) == ref
    assert parse(ref.digits) == ref


def test_references_are_unique_over_a_range() -> None:
    refs = {reference_for(n).digits for n in range(1, 50_001)}
    assert len(refs) == 50_000


@pytest.mark.parametrize("serial", [0, -1, MAX_SERIAL + 1])
def test_a_serial_out_of_range_is_refused(serial: int) -> None:
    with pytest.raises(ValueError):
        reference_for(serial)


@given(serials, st.integers(min_value=0, max_value=DIGITS - 1), st.integers(min_value=1, max_value=9))
def test_every_single_wrong_digit_is_caught(serial: int, position: int, shift: int) -> None:
    digits = reference_for(serial).digits
    wrong = digits[:position] + str((int(digits[position]) + shift) % 10) + digits[position + 1 :]
    with pytest.raises(BadReference) as refused:
        parse(wrong)
    assert refused.value.problem is Problem.BAD_CHECK_DIGIT


@given(serials, st.integers(min_value=0, max_value=DIGITS - 2))
def test_every_adjacent_transposition_is_caught(serial: int, position: int) -> None:
    digits = reference_for(serial).digits
    a, b = digits[position], digits[position + 1]
    if a == b:
        return  # swapping equal digits changes nothing
    swapped = digits[:position] + b + a + digits[position + 2 :]
    with pytest.raises(BadReference) as refused:
        parse(swapped)
    assert refused.value.problem is Problem.BAD_CHECK_DIGIT


def test_every_transposition_of_every_digit_pair_is_caught_exhaustively() -> None:
    """Damm's table is totally anti-symmetric: no pair ab/ba after any interim digit agrees."""
    for body in ("0000000", "1234567", "9876543"):
        for position in range(DIGITS - 2):  # both digits in the body
            for a in range(10):
                for b in range(10):
                    if a == b:
                        continue
                    digits = body[:position] + str(a) + str(b) + body[position + 2 :]
                    good = digits + str(damm(digits))
                    bad = good[:position] + good[position + 1] + good[position] + good[position + 2 :]
                    assert damm(bad) != 0, (good, bad)
        for last in range(10):  # the last digit swapped with the check digit
            digits = body[:-1] + str(last)
            check = str(damm(digits))
            if check != digits[-1]:
                assert damm(digits[:-1] + check + digits[-1]) != 0


@pytest.mark.parametrize(
    "typed",
    [
        "{display}",
        "{digits}",
        "1415{digits}",
        " 1415 - {g0} - {g1} ",
        "{g0} {g1}",
        "١٤١٥-{ai0}-{ai1}",
        "{ai0}{ai1}",
        "۱۴۱۵{ea}",
        "{g0}–{g1}",  # an en dash, as phones type it
    ],
)
def test_the_parser_takes_every_way_a_citizen_writes_it(typed: str) -> None:
    ref = reference_for(4217)
    ai = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    ea = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
    g0, g1 = ref.groups
    text = typed.format(
        display=ref.display, digits=ref.digits, g0=g0, g1=g1, ai0=g0.translate(ai), ai1=g1.translate(ai),
        ea=ref.digits.translate(ea),
    )  # fmt: skip
    assert parse(text) == ref


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", Problem.NOT_DIGITS),
        ("   ", Problem.NOT_DIGITS),
        ("1415-ABCD-1234", Problem.NOT_DIGITS),
        ("12345+78", Problem.NOT_DIGITS),
        ("1234567", Problem.WRONG_LENGTH),
        ("123456789", Problem.WRONG_LENGTH),
        ("9999" + "12345678", Problem.WRONG_LENGTH),  # 12 digits not starting with 1415
        ("١٢٣", Problem.WRONG_LENGTH),
    ],
)
def test_a_malformed_reference_says_what_is_wrong(typed: str, problem: Problem) -> None:
    with pytest.raises(BadReference) as refused:
        parse(typed)
    assert refused.value.problem is problem
    assert refused.value.error_id == "bad_reference"
    assert refused.value.details == {"problem": str(problem)}


def test_arabic_indic_display_for_an_arabic_sms() -> None:
    ref = Reference("42170393")
    assert arabic_indic(ref) == "١٤١٥-٤٢١٧-٠٣٩٣"


def test_the_ivr_reads_it_group_by_group_in_prompt_words() -> None:
    ref = Reference("42170393")
    assert spoken_groups(ref) == [["num-4", "num-2", "num-1", "num-7"], ["num-0", "num-3", "num-9", "num-3"]]
    assert spoken_groups(ref, prefix=True)[0] == ["num-1", "num-4", "num-1", "num-5"]
    assert spoken_arabic(ref) == ["أربعة اثنان واحد سبعة", "صفر ثلاثة تسعة ثلاثة"]
    assert all(token in VOCABULARY for group in spoken_groups(ref) for token in group)
