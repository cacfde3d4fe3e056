"""How citizens' SMS/DTMF replies are read: normalisation, service keywords, answers."""

from __future__ import annotations

import time
import unicodedata
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.inquiry.definition import Option, Question, QuestionKind, Text
from callcenter.inquiry.parser import (
    MAX_ANSWER_CHARS,
    MAX_TEXT_CHARS,
    Invalid,
    Keyword,
    Keywords,
    Parsed,
    Reason,
    keyword,
    normalize,
    parse_answer,
)

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EASTERN_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def question(kind: QuestionKind, **fields: Any) -> Question:
    return Question("q", kind, Text("سؤال", "Question"), **fields)


RATING = question(QuestionKind.RATING)
RATING_0_10 = question(QuestionKind.RATING, min_value=0, max_value=10)
NUMBER = question(QuestionKind.NUMBER)
AGE = question(QuestionKind.NUMBER, min_value=0, max_value=120)
YES_NO = question(QuestionKind.YES_NO)
TEXT = question(QuestionKind.TEXT)
SERVICE = question(
    QuestionKind.CHOICE,
    options=(
        Option("water", Text("الماء", "Water"), ("مياه",)),
        Option("power", Text("الكهرباء", "Electricity"), ("كهربا", "power cuts")),
        Option("roads", Text("الطرق", "Roads"), ("road", "طريق")),
    ),
)
SATISFACTION = question(
    QuestionKind.CHOICE,
    options=(
        Option("satisfied", Text("راضٍ", "Satisfied")),
        Option("unsatisfied", Text("غير راضٍ", "Not satisfied")),
        Option("very", Text("راضٍ جداً", "Very satisfied")),
    ),
)
HOUSEHOLD = question(
    QuestionKind.CHOICE,
    options=(
        Option("small", Text("1-2")),
        Option("medium", Text("3-5")),
        Option("large", Text("6+")),
    ),
)
#: Option values that are digits but not the options' positions.
SCORE = question(
    QuestionKind.CHOICE,
    options=(
        Option("3", Text("ممتاز", "Excellent")),
        Option("2", Text("متوسط", "Average")),
        Option("1", Text("سيء", "Bad")),
    ),
)
DUPLICATE_LABELS = question(
    QuestionKind.CHOICE,
    options=(Option("a", Text("نعم", "Yes")), Option("b", Text("نعم", "Yes, agreed"))),
)
ALL_KINDS = (RATING, NUMBER, YES_NO, TEXT, SERVICE)

# Text that stresses normalisation: Arabic letters and marks, all digit scripts, separators.
arabic_heavy = st.text(
    alphabet=st.sampled_from(
        list("ابتثجحخدذرسشصضطظعغفقكلمنهويءأإآٱىیکةؤئـًٌٍَُِّْٰۖ٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹0123456789")
        + list("-.,٫٬،؛؟/ \u200b\u200f\u202b\u2066\xa0\t\nAaZzİßﷲﻻ😀👍🏽\ufe0f\u20e3\u1100\u1161")
    )
    | st.characters(),
    max_size=60,
)


def in_scripts(ascii_text: str) -> list[str]:
    return [
        ascii_text,
        ascii_text.translate(ARABIC_INDIC),
        ascii_text.translate(EASTERN_ARABIC_INDIC),
    ]


# --- normalize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),
        ("０１２", "012"),  # fullwidth, via NFKC
        ("كتابـــة", "كتابه"),  # tatweel
        ("أَهْلاً وَسَهْلاً", "اهلا وسهلا"),  # harakat and tanween
        ("مُحَمَّدٌ", "محمد"),
        ("ذٰلِكَ", "ذلك"),  # superscript alef
        ("الرَّحِيمِ ۝ ۖ", "الرحيم"),  # Quranic marks
        ("أ إ آ ٱ ا", "ا ا ا ا ا"),
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("یک", "يك"),  # Farsi yeh, keheh
        ("مدرسة", "مدرسه"),  # teh marbuta
        ("مؤسسة", "موسسه"),  # hamza on waw
        ("مسائل", "مسايل"),  # hamza on yeh
        ("ﻻ ﷲ", "لا الله"),  # presentation forms
        ("YES Please", "yes please"),
        ("Straße", "strasse"),  # casefold, not lower
        ("Hello, World! (ok?) [x] {y} @#$%^&*_+=~`|\\/<>'\"", "hello world ok x y"),
        ("نعم، شكراً؛ لماذا؟ «جيد» ٪ ۔ ٭", "نعم شكرا لماذا جيد"),
        ("👍🏽 نعم 😀🇱🇾", "نعم"),
        ("3️⃣", "3"),  # keycap emoji
        ("\u200fنعم\u200f \u202bلا\u202c \u2066x\u2069", "نعم لا x"),
        ("a\u200bb\u200cc\u200dd\u200ee", "a b c d e"),
        ("  a\xa0\t\n b  ", "a b"),
        ("-5", "-5"),
        ("قيمة -5", "قيمه -5"),
        ("--5", "-5"),
        ("−5", "-5"),  # minus sign
        ("3-4", "3 4"),
        ("x-5", "x 5"),
        ("- 5", "5"),
        ("3.5", "3.5"),
        ("٣٫٥", "3.5"),
        (".5", ".5"),
        ("-.5", "-.5"),
        ("5.", "5"),
        ("a.5", "a 5"),
        ("1.2.3", "1.2.3"),
        ("end.", "end"),
        ("1,000", "1000"),
        ("12,345,678.9", "12345678.9"),
        ("١٬٠٠٠", "1000"),
        ("١٬٠٠٠٫٥", "1000.5"),
        ("-1,000", "-1000"),
        ("1,2", "1 2"),
        ("1,0000", "1 0000"),
        ("1234,567", "1234 567"),
        ("3،4", "3 4"),  # Arabic comma is a list, not thousands
        ("", ""),
        ("  \u200b ", ""),
        ("😀🎉", ""),
    ],
)
def test_normalize_folds_spelling_variants(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@settings(max_examples=500)
@given(arabic_heavy)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(arabic_heavy)
def test_normalize_leaves_only_words_numbers_and_single_spaces(text: str) -> None:
    folded = normalize(text)
    assert folded == folded.strip()
    assert "  " not in folded
    for ch in folded:
        assert ch in " -." or unicodedata.category(ch)[0] in "LN", repr(ch)
        assert unicodedata.category(ch) != "Nd" or "0" <= ch <= "9"


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_normalize_gives_the_same_digits_in_every_script(number: int) -> None:
    assert {normalize(f"x {s} y") for s in in_scripts(str(number))} == {f"x {number} y"}


@pytest.mark.parametrize(
    "long_text",
    [
        "a" + "\u0301\u0316" * 10_000,  # alternating mark classes: quadratic in plain NFKC
        "ا" + "\u0650\u064b" * 10_000,
        "-" * 20_000,
        "1," * 10_000,
        "1." * 10_000,
        "😀" * 20_000,
    ],
)
def test_normalize_is_fast_on_hostile_long_text(long_text: str) -> None:
    started = time.perf_counter()
    normalize(long_text)
    assert time.perf_counter() - started < 0.5


# --- keywords ----------------------------------------------------------------------------

DEFAULT = Keywords.default()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", Keyword.STOP),
        ("stop", Keyword.STOP),
        (" Stop. ", Keyword.STOP),
        ("STOP please", Keyword.STOP),
        ("stop it now", Keyword.STOP),
        ("UNSUBSCRIBE", Keyword.STOP),
        ("توقف", Keyword.STOP),
        ("توقف من فضلك", Keyword.STOP),
        ("إلغاء", Keyword.STOP),
        ("الغاء الاشتراك", Keyword.STOP),
        ("قف", Keyword.STOP),
        ("إيقاف", Keyword.STOP),
        ("ايقاف!", Keyword.STOP),
        ("ستوب", Keyword.STOP),
        ("START", Keyword.START),
        ("join", Keyword.START),
        ("ابدأ", Keyword.START),
        ("ابدا", Keyword.START),
        ("اشتراك", Keyword.START),
        ("HELP", Keyword.HELP),
        ("info?", Keyword.HELP),
        ("مساعدة", Keyword.HELP),
        ("مساعده", Keyword.HELP),
        ("stop the road works is bad", None),
        ("توقف العمل في الطريق سيء جدا", None),
        ("please stop", None),  # the keyword must come first
        ("end", None),
        ("cancel", None),
        ("3", None),
        ("نعم", None),
        ("", None),
        ("😀", None),
        ("stopping", None),
    ],
)
def test_keyword_recognises_service_commands(text: str, expected: Keyword | None) -> None:
    assert keyword(text, DEFAULT) is expected


def test_keywords_build_stores_normalized_words() -> None:
    words = Keywords.build(stop=["Halt", "أوقفْ", "", "!!"], start=["GO on"], help=["؟"])
    assert words.stop == frozenset({"halt", "اوقف"})
    assert words.start == frozenset({"go on"})
    assert words.help == frozenset()
    assert keyword("اوقف", words) is Keyword.STOP
    assert keyword("go on", words) is Keyword.START
    assert keyword("go", words) is None


def test_multi_word_keyword_must_be_the_whole_message() -> None:
    words = Keywords.build(stop=["opt out"], start=[], help=[])
    assert keyword("OPT-OUT", words) is Keyword.STOP
    assert keyword("opt out please", words) is None


def test_stop_wins_when_a_word_is_both_stop_and_start() -> None:
    words = Keywords.build(stop=["x"], start=["x"], help=["x"])
    assert keyword("x", words) is Keyword.STOP


def test_default_keywords_leave_out_words_that_are_also_answers() -> None:
    every = DEFAULT.stop | DEFAULT.start | DEFAULT.help
    assert not every & {"end", "cancel", "yes", "no", "نعم", "لا"}


@given(arabic_heavy)
def test_keyword_never_raises(text: str) -> None:
    assert keyword(text, DEFAULT) in (None, *Keyword)


# --- rating ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", Parsed("3", 3.0)),
        (" ٣ ", Parsed("3", 3.0)),
        ("۳", Parsed("3", 3.0)),
        ("1", Parsed("1", 1.0)),
        ("5", Parsed("5", 5.0)),
        ("05", Parsed("5", 5.0)),
        ("3.0", Parsed("3", 3.0)),
        ("3/5", Parsed("3", 3.0)),
        ("٣/٥", Parsed("3", 3.0)),
        ("5/5", Parsed("5", 5.0)),
        ("3 out of 5", Parsed("3", 3.0)),
        ("4 من 5", Parsed("4", 4.0)),
        ("ثلاثة من خمسة", Parsed("3", 3.0)),
        ("3 stars", Parsed("3", 3.0)),
        ("3stars", Parsed("3", 3.0)),
        ("⭐⭐⭐ 3", Parsed("3", 3.0)),
        ("تقييمي 4", Parsed("4", 4.0)),
        ("رقم 4 please", Parsed("4", 4.0)),
        ("4 4", Parsed("4", 4.0)),
        ("3️⃣", Parsed("3", 3.0)),
        ("three", Parsed("3", 3.0)),
        ("Five!", Parsed("5", 5.0)),
        ("واحد", Parsed("1", 1.0)),
        ("اثنين", Parsed("2", 2.0)),
        ("اثنان", Parsed("2", 2.0)),
        ("ثلاث", Parsed("3", 3.0)),
        ("ثلاثة", Parsed("3", 3.0)),
        ("ثلاثه", Parsed("3", 3.0)),
        ("أربعة", Parsed("4", 4.0)),
        ("خمسة", Parsed("5", 5.0)),
        ("35", Invalid("out_of_range")),
        ("6", Invalid("out_of_range")),
        ("0", Invalid("out_of_range")),
        ("-3", Invalid("out_of_range")),
        ("ستة", Invalid("out_of_range")),
        ("3/10", Invalid("ambiguous")),  # not our scale: two numbers
        ("3 or 4", Invalid("ambiguous")),
        ("3-4", Invalid("ambiguous")),
        ("٣ او ٤", Invalid("ambiguous")),
        ("three 4", Invalid("ambiguous")),
        ("abc", Invalid("not_a_number")),
        ("ممتاز", Invalid("not_a_number")),
        ("3.5", Invalid("not_a_number")),
        ("٣٫٥", Invalid("not_a_number")),
        ("1.2.3", Invalid("not_a_number")),
        ("", Invalid("empty")),
        ("👍", Invalid("empty")),
    ],
)
def test_rating_reads_one_whole_number_in_range(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(RATING, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Parsed("0", 0.0)),
        ("صفر", Parsed("0", 0.0)),
        ("10", Parsed("10", 10.0)),
        ("١٠", Parsed("10", 10.0)),
        ("عشرة", Parsed("10", 10.0)),
        ("10/10", Parsed("10", 10.0)),
        ("7 من 10", Parsed("7", 7.0)),
        ("3/5", Invalid("ambiguous")),
        ("5/5", Parsed("5", 5.0)),  # the same number twice
        ("11", Invalid("out_of_range")),
    ],
)
def test_rating_uses_the_question_bounds(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(RATING_0_10, text) == expected


def test_eastern_arabic_indic_digit_answers_rating() -> None:
    assert parse_answer(RATING, "۴") == Parsed("4", 4.0)


@pytest.mark.parametrize("value", range(0, 11))
def test_every_rating_value_parses_the_same_in_three_digit_scripts(value: int) -> None:
    results = {parse_answer(RATING_0_10, text) for text in in_scripts(str(value))}
    assert results == {Parsed(str(value), float(value))}


@given(st.integers(-50, 50), st.integers(1, 50), st.integers(-60, 110))
def test_rating_accepts_exactly_the_values_in_its_bounds(low: int, span: int, value: int) -> None:
    rating = question(QuestionKind.RATING, min_value=low, max_value=low + span)
    results = {parse_answer(rating, text) for text in in_scripts(str(value))}
    expected = Parsed(str(value), float(value)) if low <= value <= low + span else None
    assert results == {expected or Invalid("out_of_range")}


# --- number ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", Parsed("42", 42.0)),
        ("٤٢", Parsed("42", 42.0)),
        ("۴۲", Parsed("42", 42.0)),
        ("0", Parsed("0", 0.0)),
        ("-0", Parsed("0", 0.0)),
        ("007", Parsed("7", 7.0)),
        ("-12", Parsed("-12", -12.0)),
        ("−12", Parsed("-12", -12.0)),
        ("2.5", Parsed("2.5", 2.5)),
        ("-2.50", Parsed("-2.5", -2.5)),
        ("٢٫٥", Parsed("2.5", 2.5)),
        (".5", Parsed("0.5", 0.5)),
        ("-.5", Parsed("-0.5", -0.5)),
        ("1,000", Parsed("1000", 1000.0)),
        ("١٬٠٠٠", Parsed("1000", 1000.0)),
        ("۱٬۰۰۰٬۰۰۰", Parsed("1000000", 1000000.0)),
        ("1,234.5", Parsed("1234.5", 1234.5)),
        ("5 kids", Parsed("5", 5.0)),
        ("عندي 3 أطفال", Parsed("3", 3.0)),
        ("خمسة", Parsed("5", 5.0)),
        ("1000000000", Parsed("1000000000", 1e9)),
        ("1000000001", Invalid("out_of_range")),
        ("-1000000001", Invalid("out_of_range")),
        ("9" * 500, Invalid("out_of_range")),
        ("1 2", Invalid("ambiguous")),
        ("1,2", Invalid("ambiguous")),
        ("3-4", Invalid("ambiguous")),
        ("1.2.3", Invalid("not_a_number")),
        ("many", Invalid("not_a_number")),
        ("", Invalid("empty")),
    ],
)
def test_number_reads_integers_and_decimals(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(NUMBER, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Parsed("0", 0.0)),
        ("120", Parsed("120", 120.0)),
        ("35.5", Parsed("35.5", 35.5)),
        ("121", Invalid("out_of_range")),
        ("120.01", Invalid("out_of_range")),
        ("-1", Invalid("out_of_range")),
    ],
)
def test_number_checks_the_question_bounds(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(AGE, text) == expected


@given(st.integers(min_value=-(10**9), max_value=10**9), st.booleans())
def test_every_integer_parses_the_same_in_three_digit_scripts(number: int, group: bool) -> None:
    written = f"{number:,}" if group else str(number)
    results = {parse_answer(NUMBER, s) for s in in_scripts(written)}
    results.add(parse_answer(NUMBER, written.replace(",", "٬").translate(ARABIC_INDIC)))
    assert results == {Parsed(str(number), float(number))}


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False))
def test_every_decimal_parses_the_same_in_three_digit_scripts(number: Decimal) -> None:
    written = f"{number:f}"
    results = {parse_answer(NUMBER, s) for s in in_scripts(written)}
    results.add(parse_answer(NUMBER, written.replace(".", "٫").translate(ARABIC_INDIC)))
    assert len(results) == 1
    (result,) = results
    assert isinstance(result, Parsed)
    assert Decimal(result.value) == number
    assert result.number == float(number)


# --- yes / no ----------------------------------------------------------------------------

YES, NO = Parsed("yes", 1.0), Parsed("no", 0.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *((word, YES) for word in ("yes", "YES!", "Y", "yeah", "yep", "ok", "OK", "okay", "1")),
        *((word, YES) for word in ("sure", "of course", "yes please", "yes, I agree")),
        *((word, YES) for word in ("نعم", "نعم.", "ايوه", "أيوه", "ايوا", "اي", "إي", "أجل")),
        *((word, YES) for word in ("بلى", "طبعا", "طبعاً", "موافق", "أكيد", "باهي", "نعم نعم")),
        *((word, YES) for word in ("إي نعم", "لا بأس", "لا مانع", "no problem", "١", "۱")),
        *((word, NO) for word in ("no", "NO.", "n", "nope", "nah", "2", "٢", "no thanks")),
        *((word, NO) for word in ("لا", "لأ", "لا لا", "كلا", "مش موافق", "غير موافق")),
        *((word, NO) for word in ("لا أوافق", "not ok", "I don't agree", "disagree")),
        ("yes no", Invalid("ambiguous")),
        ("نعم لا", Invalid("ambiguous")),
        ("لا نعم", Invalid("ambiguous")),
        ("yes but I don't know", Invalid("ambiguous")),
        ("لا أعرف", Invalid("unknown_option")),
        ("I don't know", Invalid("unknown_option")),
        ("not sure", Invalid("unknown_option")),
        ("ربما", Invalid("unknown_option")),
        ("maybe", Invalid("unknown_option")),
        ("3", Invalid("unknown_option")),
        ("1 2", Invalid("unknown_option")),  # digits only count as the whole reply
        ("I have 2 kids", Invalid("unknown_option")),
        ("أي شيء", Invalid("unknown_option")),  # "أي" means "any" in a sentence
        ("hello", Invalid("unknown_option")),
        ("", Invalid("empty")),
        ("👍", Invalid("empty")),
    ],
)
def test_yes_no_reads_arabic_and_english_words(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(YES_NO, text) == expected


# --- choice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "water"),
        ("٢", "power"),
        ("۳", "roads"),
        ("3.", "roads"),
        ("(2)", "power"),
        ("رقم 2", "power"),
        ("option 3", "roads"),
        ("الخيار الثاني", "power"),
        ("الثالث", "roads"),
        ("the first", "water"),
        ("two", "power"),
        ("اثنين", "power"),
        ("water", "water"),
        ("WATER!", "water"),
        ("power", "power"),  # by value
        ("Electricity", "power"),
        ("الكهرباء", "power"),
        ("الْكَهْرَبَاءُ", "power"),  # harakat
        ("كهرباء", "power"),  # article optional
        ("كهربا", "power"),  # synonym
        ("power cuts every day", "power"),
        ("مياه", "water"),
        ("ماء", "water"),
        ("نحتاج الماء", "water"),
        ("the roads are bad", "roads"),
        ("2 electricity", "power"),  # number and label agree
        ("2 - الكهرباء", "power"),
        ("water 5 times a day", "water"),  # a quantity, not a position
    ],
)
def test_choice_finds_option_by_position_value_label_or_synonym(text: str, expected: str) -> None:
    assert parse_answer(SERVICE, text) == Parsed(expected)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("4", "unknown_option"),
        ("0", "unknown_option"),
        ("-1", "unknown_option"),
        ("1.5", "unknown_option"),
        ("tenth", "unknown_option"),
        ("gas", "unknown_option"),
        ("wat", "unknown_option"),  # whole words only
        ("waterfall", "unknown_option"),
        ("1 2", "ambiguous"),
        ("1 electricity", "ambiguous"),
        ("2 or 5", "ambiguous"),
        ("option 3-5", "ambiguous"),
        ("water and roads", "ambiguous"),
        ("الكهرباء والماء", "ambiguous"),
        ("", "empty"),
        ("🚰", "empty"),
    ],
)
def test_choice_refuses_unknown_or_ambiguous_replies(text: str, reason: str) -> None:
    assert parse_answer(SERVICE, text) == Invalid(reason)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("satisfied", Parsed("satisfied")),
        ("I am satisfied", Parsed("satisfied")),
        ("not satisfied", Parsed("unsatisfied")),
        ("Very satisfied!", Parsed("very")),
        ("راضٍ", Parsed("satisfied")),
        ("راض", Parsed("satisfied")),
        ("غير راض", Parsed("unsatisfied")),
        ("انا راض جدا", Parsed("very")),
        ("very satisfied, not satisfied", Invalid("ambiguous")),
    ],
)
def test_choice_prefers_the_longest_label(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(SATISFACTION, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3-5", Parsed("medium")),
        ("٣-٥", Parsed("medium")),
        ("1-2", Parsed("small")),
        ("2", Parsed("medium")),  # a lone number is the position, as prompted
        ("3", Parsed("large")),
        ("option 3-5", Invalid("ambiguous")),
    ],
)
def test_choice_numeric_labels_match_only_the_whole_reply(text: str, expected: Parsed | Invalid) -> None:
    assert parse_answer(HOUSEHOLD, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", "3"), ("3", "1"), ("سيء", "1"), ("excellent", "3"), ("الثاني", "2")],
)
def test_choice_digits_are_positions_even_when_values_are_digits(text: str, expected: str) -> None:
    assert parse_answer(SCORE, text) == Parsed(expected)


def test_choice_with_two_options_sharing_a_label_is_ambiguous() -> None:
    assert parse_answer(DUPLICATE_LABELS, "نعم") == Invalid("ambiguous")
    assert parse_answer(DUPLICATE_LABELS, "2") == Parsed("b")


# --- text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  الطريق   سيء\nجداً  ", "الطريق سيء جداً"),  # not normalised: harakat kept
        ("Road is BAD!!", "Road is BAD!!"),
        ("a\x00b\x07c", "a b c"),
        ("👍 good", "👍 good"),
        ("؟ لماذا", "؟ لماذا"),
        ("٣", "٣"),
    ],
)
def test_text_keeps_the_citizens_own_words(text: str, expected: str) -> None:
    assert parse_answer(TEXT, text) == Parsed(expected, None)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b\u200f", "😀👍🏽", "?!...", "؟؟"])
def test_text_without_words_is_empty(text: str) -> None:
    assert parse_answer(TEXT, text) == Invalid("empty")


def test_long_text_is_cut_not_refused() -> None:
    result = parse_answer(TEXT, "ب" * 1500 + "  end")
    assert result == Parsed("ب" * MAX_TEXT_CHARS)


def test_text_cut_drops_trailing_space() -> None:
    result = parse_answer(TEXT, "x" * (MAX_TEXT_CHARS - 1) + "  y")
    assert result == Parsed("x" * (MAX_TEXT_CHARS - 1))


# --- every kind --------------------------------------------------------------------------


@pytest.mark.parametrize("kind_question", ALL_KINDS, ids=lambda q: q.kind.value)
@pytest.mark.parametrize("text", ["", " ", "\u200f", "😀", "...", "\u0640\u064b"])
def test_any_kind_treats_a_reply_without_content_as_empty(kind_question: Question, text: str) -> None:
    assert parse_answer(kind_question, text) == Invalid(Reason.EMPTY)


@pytest.mark.parametrize("kind_question", [RATING, NUMBER, YES_NO, SERVICE])
def test_non_text_reply_longer_than_the_limit_is_too_long(kind_question: Question) -> None:
    assert parse_answer(kind_question, "3 " * MAX_ANSWER_CHARS) == Invalid("too_long")


HOSTILE = [
    "3 " * 1000,
    "9" * 2000,
    "1," * 1000,
    "1." * 1000,
    "-" * 2000,
    "لا " * 700,
    "water " * 350,
    "ا" + "\u0650\u064b" * 1000,
    "😀" * 2000,
    "x" * 2000,
]


@pytest.mark.parametrize("kind_question", ALL_KINDS, ids=lambda q: q.kind.value)
def test_two_thousand_character_replies_are_quick(kind_question: Question) -> None:
    started = time.perf_counter()
    for text in HOSTILE:
        assert isinstance(parse_answer(kind_question, text), Parsed | Invalid)
        short = text[: MAX_ANSWER_CHARS - 1]
        assert isinstance(parse_answer(kind_question, short), Parsed | Invalid)
    assert time.perf_counter() - started < 1.0


def test_mixed_scripts_answer_a_rating() -> None:
    assert parse_answer(RATING, "رقم 4 please") == Parsed("4", 4.0)


def test_reasons_are_plain_strings() -> None:
    reason = parse_answer(RATING, "9")
    assert isinstance(reason, Invalid)
    assert reason.reason == "out_of_range"
    assert {r.value for r in Reason} == {
        "empty",
        "not_a_number",
        "out_of_range",
        "unknown_option",
        "ambiguous",
        "too_long",
    }


@settings(max_examples=300)
@given(
    st.sampled_from(
        [RATING, RATING_0_10, NUMBER, AGE, YES_NO, TEXT, SERVICE, SATISFACTION, HOUSEHOLD, SCORE]
    ),
    arabic_heavy | st.text(max_size=300),
)
def test_parse_answer_never_raises(kind_question: Question, text: str) -> None:
    result = parse_answer(kind_question, text)
    assert isinstance(result, Parsed | Invalid)
    if isinstance(result, Parsed) and kind_question.kind is QuestionKind.CHOICE:
        assert result.value in {o.value for o in kind_question.options}
    if isinstance(result, Parsed) and kind_question.kind is QuestionKind.TEXT:
        assert 0 < len(result.value) <= MAX_TEXT_CHARS
