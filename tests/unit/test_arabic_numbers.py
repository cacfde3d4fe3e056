"""Arabic number grammar for announcements: the tables are written out by hand, not derived."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.arabic_numbers import (
    CALLER,
    HOUR,
    MINUTE,
    NOUNS,
    SECOND,
    VOCABULARY,
    Noun,
    announcement_tokens,
    count_phrase,
    number_tokens,
    ordinal,
    ordinal_tokens,
    texts,
    words,
)
from callcenter.prompts import compose_number, load_catalogue, prompt_path

MASCULINE = {
    0: "صفر",
    1: "واحد",
    2: "اثنان",
    3: "ثلاثة",
    4: "أربعة",
    5: "خمسة",
    6: "ستة",
    7: "سبعة",
    8: "ثمانية",
    9: "تسعة",
    10: "عشرة",
    11: "أحد عشر",
    12: "اثنا عشر",
    13: "ثلاثة عشر",
    14: "أربعة عشر",
    15: "خمسة عشر",
    16: "ستة عشر",
    17: "سبعة عشر",
    18: "ثمانية عشر",
    19: "تسعة عشر",
    20: "عشرون",
    21: "واحد وعشرون",
    22: "اثنان وعشرون",
    23: "ثلاثة وعشرون",
    24: "أربعة وعشرون",
    25: "خمسة وعشرون",
    26: "ستة وعشرون",
    27: "سبعة وعشرون",
    28: "ثمانية وعشرون",
    29: "تسعة وعشرون",
    30: "ثلاثون",
    99: "تسعة وتسعون",
    100: "مئة",
    101: "مئة وواحد",
    111: "مئة وأحد عشر",
    200: "مئتان",
    345: "ثلاثمئة وخمسة وأربعون",
    1000: "ألف",
    2000: "ألفان",
    2024: "ألفان وأربعة وعشرون",
    3000: "ثلاثة آلاف",
    11000: "أحد عشر ألفاً",
    100000: "مئة ألف",
    999999: "تسعمئة وتسعة وتسعون ألفاً وتسعمئة وتسعة وتسعون",
}

FEMININE = {
    0: "صفر",
    1: "واحدة",
    2: "اثنتان",
    3: "ثلاث",
    4: "أربع",
    5: "خمس",
    6: "ست",
    7: "سبع",
    8: "ثمانٍ",
    9: "تسع",
    10: "عشر",
    11: "إحدى عشرة",
    12: "اثنتا عشرة",
    13: "ثلاث عشرة",
    14: "أربع عشرة",
    15: "خمس عشرة",
    16: "ست عشرة",
    17: "سبع عشرة",
    18: "ثماني عشرة",
    19: "تسع عشرة",
    20: "عشرون",
    21: "إحدى وعشرون",
    22: "اثنتان وعشرون",
    23: "ثلاث وعشرون",
    24: "أربع وعشرون",
    25: "خمس وعشرون",
    26: "ست وعشرون",
    27: "سبع وعشرون",
    28: "ثمانٍ وعشرون",
    29: "تسع وعشرون",
    30: "ثلاثون",
    99: "تسع وتسعون",
    100: "مئة",
    101: "مئة وواحدة",
    111: "مئة وإحدى عشرة",
    200: "مئتان",
    1000: "ألف",
    2024: "ألفان وأربع وعشرون",
}

MINUTES = {
    1: "دقيقة واحدة",
    2: "دقيقتان",
    3: "ثلاث دقائق",
    4: "أربع دقائق",
    5: "خمس دقائق",
    6: "ست دقائق",
    7: "سبع دقائق",
    8: "ثماني دقائق",
    9: "تسع دقائق",
    10: "عشر دقائق",
    11: "إحدى عشرة دقيقة",
    12: "اثنتا عشرة دقيقة",
    13: "ثلاث عشرة دقيقة",
    14: "أربع عشرة دقيقة",
    15: "خمس عشرة دقيقة",
    16: "ست عشرة دقيقة",
    17: "سبع عشرة دقيقة",
    18: "ثماني عشرة دقيقة",
    19: "تسع عشرة دقيقة",
    20: "عشرون دقيقة",
    21: "إحدى وعشرون دقيقة",
    22: "اثنتان وعشرون دقيقة",
    23: "ثلاث وعشرون دقيقة",
    24: "أربع وعشرون دقيقة",
    25: "خمس وعشرون دقيقة",
    26: "ست وعشرون دقيقة",
    27: "سبع وعشرون دقيقة",
    28: "ثمانٍ وعشرون دقيقة",
    29: "تسع وعشرون دقيقة",
    30: "ثلاثون دقيقة",
    99: "تسع وتسعون دقيقة",
    100: "مئة دقيقة",
    101: "مئة دقيقة ودقيقة",  # as in ألف ليلة وليلة
    102: "مئة دقيقة ودقيقتان",
    103: "مئة وثلاث دقائق",
    111: "مئة وإحدى عشرة دقيقة",
    200: "مئتا دقيقة",
    1000: "ألف دقيقة",
    1001: "ألف دقيقة ودقيقة",
    1200: "ألف ومئتا دقيقة",
    2000: "ألفا دقيقة",
    2024: "ألفان وأربع وعشرون دقيقة",
    3000: "ثلاثة آلاف دقيقة",
    11000: "أحد عشر ألف دقيقة",
}

CALLERS = {
    1: "متصل واحد",
    2: "متصلان",
    3: "ثلاثة متصلين",
    4: "أربعة متصلين",
    5: "خمسة متصلين",
    6: "ستة متصلين",
    7: "سبعة متصلين",
    8: "ثمانية متصلين",
    9: "تسعة متصلين",
    10: "عشرة متصلين",
    11: "أحد عشر متصلاً",
    12: "اثنا عشر متصلاً",
    13: "ثلاثة عشر متصلاً",
    14: "أربعة عشر متصلاً",
    15: "خمسة عشر متصلاً",
    16: "ستة عشر متصلاً",
    17: "سبعة عشر متصلاً",
    18: "ثمانية عشر متصلاً",
    19: "تسعة عشر متصلاً",
    20: "عشرون متصلاً",
    21: "واحد وعشرون متصلاً",
    22: "اثنان وعشرون متصلاً",
    23: "ثلاثة وعشرون متصلاً",
    24: "أربعة وعشرون متصلاً",
    25: "خمسة وعشرون متصلاً",
    26: "ستة وعشرون متصلاً",
    27: "سبعة وعشرون متصلاً",
    28: "ثمانية وعشرون متصلاً",
    29: "تسعة وعشرون متصلاً",
    30: "ثلاثون متصلاً",
    99: "تسعة وتسعون متصلاً",
    100: "مئة متصل",
    101: "مئة متصل ومتصل",
    102: "مئة متصل ومتصلان",
    111: "مئة وأحد عشر متصلاً",
    200: "مئتا متصل",
    1000: "ألف متصل",
    2024: "ألفان وأربعة وعشرون متصلاً",
}

ORDINALS = {
    1: ("الأول", "الأولى"),
    2: ("الثاني", "الثانية"),
    3: ("الثالث", "الثالثة"),
    4: ("الرابع", "الرابعة"),
    5: ("الخامس", "الخامسة"),
    6: ("السادس", "السادسة"),
    7: ("السابع", "السابعة"),
    8: ("الثامن", "الثامنة"),
    9: ("التاسع", "التاسعة"),
    10: ("العاشر", "العاشرة"),
    11: ("الحادي عشر", "الحادية عشرة"),
    12: ("الثاني عشر", "الثانية عشرة"),
    13: ("الثالث عشر", "الثالثة عشرة"),
    14: ("الرابع عشر", "الرابعة عشرة"),
    15: ("الخامس عشر", "الخامسة عشرة"),
    16: ("السادس عشر", "السادسة عشرة"),
    17: ("السابع عشر", "السابعة عشرة"),
    18: ("الثامن عشر", "الثامنة عشرة"),
    19: ("التاسع عشر", "التاسعة عشرة"),
    20: ("العشرون", "العشرون"),
    21: ("الحادي والعشرون", "الحادية والعشرون"),
    22: ("الثاني والعشرون", "الثانية والعشرون"),
    23: ("الثالث والعشرون", "الثالثة والعشرون"),
    24: ("الرابع والعشرون", "الرابعة والعشرون"),
    25: ("الخامس والعشرون", "الخامسة والعشرون"),
    26: ("السادس والعشرون", "السادسة والعشرون"),
    27: ("السابع والعشرون", "السابعة والعشرون"),
    28: ("الثامن والعشرون", "الثامنة والعشرون"),
    29: ("التاسع والعشرون", "التاسعة والعشرون"),
    30: ("الثلاثون", "الثلاثون"),
    99: ("التاسع والتسعون", "التاسعة والتسعون"),
    100: ("المئة", "المئة"),
    101: ("الحادي بعد المئة", "الحادية بعد المئة"),
    111: ("الحادي عشر بعد المئة", "الحادية عشرة بعد المئة"),
    118: ("الثامن عشر بعد المئة", "الثامنة عشرة بعد المئة"),
    200: ("المئتان", "المئتان"),
    250: ("الخمسون بعد المئتين", "الخمسون بعد المئتين"),
}


# -- cardinals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "expected"), MASCULINE.items())
def test_words_are_the_counting_form(n: int, expected: str) -> None:
    assert words(n) == expected


@pytest.mark.parametrize(("n", "expected"), FEMININE.items())
def test_feminine_words_are_the_form_that_counts_a_feminine_noun(n: int, expected: str) -> None:
    assert words(n, feminine=True) == expected


def test_words_use_the_same_prompts_as_compose_number() -> None:
    # Where they part, words keeps the classical forms: compose_number says 101,000 as
    # "مئة وواحد ألف" and 200,000 as "مئتان ألف"; words says "مئة ألف وألف" and "مئتا ألف".
    for n in [*range(0, 3000), *range(3000, 999_999, 997), 999_999]:
        thousands = n // 1000
        if thousands < 100 or (thousands % 100 not in (1, 2) and thousands != 200):
            assert number_tokens(n) == compose_number(n, "ar"), n
    assert words(200_000) == "مئتا ألف" and words(101_000) == "مئة ألف وألف"


# -- counted nouns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "expected"), MINUTES.items())
def test_minutes_agree_with_their_number(n: int, expected: str) -> None:
    assert count_phrase(n, MINUTE) == expected


@pytest.mark.parametrize(("n", "expected"), CALLERS.items())
def test_callers_agree_with_their_number(n: int, expected: str) -> None:
    assert count_phrase(n, CALLER) == expected


@pytest.mark.parametrize(
    ("n", "noun", "expected"),
    [
        (1, SECOND, "ثانية واحدة"),
        (2, SECOND, "ثانيتان"),
        (3, SECOND, "ثلاث ثوانٍ"),
        (10, SECOND, "عشر ثوانٍ"),
        (11, SECOND, "إحدى عشرة ثانية"),
        (30, SECOND, "ثلاثون ثانية"),
        (45, SECOND, "خمس وأربعون ثانية"),
        (1, HOUR, "ساعة واحدة"),
        (2, HOUR, "ساعتان"),
        (3, HOUR, "ثلاث ساعات"),
        (12, HOUR, "اثنتا عشرة ساعة"),
    ],
)
def test_seconds_and_hours_agree_with_their_number(n: int, noun: Noun, expected: str) -> None:
    assert count_phrase(n, noun) == expected


def test_any_noun_with_its_forms_can_be_counted() -> None:
    request = Noun("request", "طلب", "طلبان", "طلبات", feminine=False, accusative="طلباً")
    assert [count_phrase(n, request) for n in (1, 2, 3, 11, 100)] == [
        "طلب واحد",
        "طلبان",
        "ثلاثة طلبات",
        "أحد عشر طلباً",
        "مئة طلب",
    ]
    assert announcement_tokens(11, request) == ["num-11", "noun-request-acc"]
    assert texts(announcement_tokens(3, request), request) == ["ثلاثة", "طلبات"]


# -- ordinals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "forms"), ORDINALS.items())
def test_ordinals_for_positions_in_both_genders(n: int, forms: tuple[str, str]) -> None:
    assert (ordinal(n), ordinal(n, feminine=True)) == forms


# -- tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "noun", "tokens"),
    [
        (1, MINUTE, ["noun-minute", "num-1-f"]),
        (2, MINUTE, ["noun-minute-dual"]),
        (3, MINUTE, ["num-3-f", "noun-minute-pl"]),
        (8, MINUTE, ["num-8-f-construct", "noun-minute-pl"]),
        (11, CALLER, ["num-11", "noun-caller-acc"]),
        (11, MINUTE, ["num-11-f", "noun-minute"]),
        (21, MINUTE, ["num-1-f-unit", "num-and-20", "noun-minute"]),
        (101, MINUTE, ["num-100", "noun-minute", "noun-and-minute"]),
        (200, CALLER, ["num-200-construct", "noun-caller"]),
        (2024, CALLER, ["num-2000", "num-and-4", "num-and-20", "noun-caller-acc"]),
        (3000, MINUTE, ["num-3", "word-thousands", "noun-minute"]),
    ],
)
def test_announcements_are_made_of_stable_prompt_tokens(n: int, noun: Noun, tokens: list[str]) -> None:
    assert announcement_tokens(n, noun) == tokens


def test_ordinal_tokens_reuse_the_simple_ordinals_inside_compounds() -> None:
    assert ordinal_tokens(21) == ["ord-1-unit", "ord-and-20"]
    assert ordinal_tokens(22, feminine=True) == ["ord-2-f", "ord-and-20"]
    assert ordinal_tokens(111) == ["ord-11", "word-after", "ord-after-100"]


def _every_token() -> set[str]:
    found: set[str] = set()
    for n in [*range(1, 1200), *range(1200, 999_999, 4999), 999_999]:
        found.update(number_tokens(n), number_tokens(n, feminine=True))
        for noun in NOUNS:
            found.update(announcement_tokens(n, noun))
        if n <= 999:
            found.update(ordinal_tokens(n), ordinal_tokens(n, feminine=True))
    return found


def test_playing_the_tokens_says_exactly_the_text() -> None:
    for n in [*range(1, 1200), 2024, 11000, 101_000, 999_999]:
        for noun in NOUNS:
            assert " ".join(texts(announcement_tokens(n, noun))) == count_phrase(n, noun)
        assert " ".join(texts(number_tokens(n, feminine=True))) == words(n, feminine=True)
        if n <= 999:
            assert " ".join(texts(ordinal_tokens(n))) == ordinal(n)


def test_every_token_is_a_valid_prompt_id_in_the_vocabulary() -> None:
    used = _every_token()
    assert used <= VOCABULARY.keys()
    for token in used:
        prompt_path(Path("/prompts"), "ar", token)  # refuses ids the catalogue could not hold


def test_tokens_shared_with_the_prompt_catalogue_say_the_same_words() -> None:
    catalogue = load_catalogue()
    shared = VOCABULARY.keys() & catalogue.keys()
    assert {"num-3", "num-and-40", "num-1000", "word-thousands", "word-thousand-acc"} <= shared
    assert {t: VOCABULARY[t] for t in shared} == {t: catalogue[t].ar for t in shared}


# -- what is refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [-1, 1_000_000, True, 2.0])
def test_words_take_whole_numbers_up_to_999999(n: int) -> None:
    with pytest.raises(ValueError):
        words(n)


def test_zero_has_no_counted_form_and_positions_start_at_one() -> None:
    with pytest.raises(ValueError):
        count_phrase(0, MINUTE)
    with pytest.raises(ValueError):
        ordinal(0)
    with pytest.raises(ValueError):
        ordinal(1000)
