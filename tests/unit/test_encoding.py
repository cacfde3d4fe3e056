"""Segment counting and splitting: GSM-7 and UCS-2 limits, at and around every boundary."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callcenter.sms.encoding import SmsEncoding, analyse, split

ALEF = "ا"  # U+0627
EMOJI = "👍"  # U+1F44D: two UTF-16 units
EXT = "€"  # GSM-7 extension: two septets
GSM_EXTENSION = "\f^{}\\[~]|€"
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def gsm_units(seg: str) -> int:
    return sum(2 if ch in GSM_EXTENSION else 1 for ch in seg)


def ucs2_units(seg: str) -> int:
    return len(seg.encode("utf-16-le")) // 2


# --- empty and plain GSM-7 ---------------------------------------------------------------


def test_empty_text_is_one_gsm7_segment() -> None:
    assert analyse("") == SmsEncoding(encoding="gsm7", units=0, segments=1)
    assert split("") == [""]


def test_basic_set_is_all_gsm7() -> None:
    assert len(GSM_BASIC) == 127  # 128 codes minus the escape
    assert analyse(GSM_BASIC) == SmsEncoding("gsm7", 127, 1)


def test_every_extension_char_costs_two_septets() -> None:
    for ch in GSM_EXTENSION:
        assert analyse(ch) == SmsEncoding("gsm7", 2, 1), repr(ch)


def test_escape_and_lookalikes_force_ucs2() -> None:
    for ch in ("\x1b", "`", "ç", "’", "\t", "\u00a0"):
        assert analyse("abc" + ch).encoding == "ucs2", repr(ch)


@pytest.mark.parametrize(
    ("n", "segments"),
    [(1, 1), (159, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_boundaries(n: int, segments: int) -> None:
    text = "a" * n
    result = analyse(text)
    assert result == SmsEncoding("gsm7", n, segments)
    parts = split(text)
    assert len(parts) == segments
    assert "".join(parts) == text
    if segments > 1:
        assert all(len(p) == 153 for p in parts[:-1])


# --- GSM-7 extension characters at boundaries ----------------------------------------------


def test_extension_char_fills_single_message_exactly() -> None:
    text = "a" * 158 + EXT
    assert analyse(text) == SmsEncoding("gsm7", 160, 1)
    assert split(text) == [text]


def test_extension_char_overflowing_single_message() -> None:
    text = "a" * 159 + EXT
    assert analyse(text) == SmsEncoding("gsm7", 161, 2)
    assert split(text) == ["a" * 153, "a" * 6 + EXT]


def test_extension_char_never_split_across_parts() -> None:
    # 152 'a' + '€' would be 154 septets: the escape pair moves whole to the next part.
    text = "a" * 152 + EXT + "b" * 10
    parts = split(text)
    assert parts == ["a" * 152, EXT + "b" * 10]
    assert analyse(text) == SmsEncoding("gsm7", 164, 2)


def test_extension_char_exactly_at_part_end() -> None:
    text = "a" * 151 + EXT + "b" * 10
    parts = split(text)
    assert parts == ["a" * 151 + EXT, "b" * 10]
    assert gsm_units(parts[0]) == 153


def test_waste_from_extension_chars_can_add_a_segment() -> None:
    # 306 septets fit two full parts of 153 only if no pair straddles the boundary.
    text = "a" * 152 + "[" + "a" * 152
    assert analyse(text).units == 306
    assert analyse(text).segments == 3
    assert len(split(text)) == 3


def test_all_extension_text() -> None:
    text = "{}" * 80  # 160 chars, 320 septets: 76 per part
    parts = split(text)
    assert all(len(p) == 76 for p in parts[:-1])
    assert analyse(text) == SmsEncoding("gsm7", 320, len(parts))
    assert len(parts) == 3


# --- Arabic (UCS-2) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "segments"),
    [(1, 1), (69, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_arabic_boundaries(n: int, segments: int) -> None:
    text = ALEF * n
    assert analyse(text) == SmsEncoding("ucs2", n, segments)
    parts = split(text)
    assert len(parts) == segments
    assert "".join(parts) == text
    if segments > 1:
        assert all(len(p) == 67 for p in parts[:-1])


def test_real_arabic_poll_question() -> None:
    text = "هل أنت راضٍ عن خدمات الكهرباء في منطقتك؟ أرسل 1 لنعم أو 2 لا."
    result = analyse(text)
    assert result.encoding == "ucs2"
    assert result.units == len(text)
    assert result.segments == 1


def test_mixed_arabic_and_latin_is_ucs2_counted_per_char() -> None:
    latin = "Reply YES or NO: "
    text = latin + ALEF * (70 - len(latin))
    assert analyse(text) == SmsEncoding("ucs2", 70, 1)
    assert analyse(text + "x") == SmsEncoding("ucs2", 71, 2)


def test_one_arabic_letter_turns_long_latin_into_ucs2() -> None:
    text = "a" * 150 + ALEF
    assert analyse("a" * 150).segments == 1
    assert analyse(text) == SmsEncoding("ucs2", 151, 3)


def test_extension_chars_in_ucs2_cost_one_unit() -> None:
    assert analyse(ALEF + EXT + "{") == SmsEncoding("ucs2", 3, 1)


# --- emoji (surrogate pairs) --------------------------------------------------------------


def test_emoji_counts_two_units() -> None:
    assert analyse(EMOJI) == SmsEncoding("ucs2", 2, 1)
    assert analyse(EMOJI * 35) == SmsEncoding("ucs2", 70, 1)
    assert analyse(EMOJI * 35 + "a") == SmsEncoding("ucs2", 71, 2)


def test_emoji_at_single_boundary() -> None:
    text = ALEF * 68 + EMOJI
    assert analyse(text) == SmsEncoding("ucs2", 70, 1)
    text = ALEF * 69 + EMOJI
    assert analyse(text) == SmsEncoding("ucs2", 71, 2)
    assert split(text) == [text[:67], text[67:]]


def test_surrogate_pair_never_split_across_parts() -> None:
    text = ALEF * 66 + EMOJI + ALEF * 10
    parts = split(text)
    assert parts == [ALEF * 66, EMOJI + ALEF * 10]
    assert analyse(text) == SmsEncoding("ucs2", 78, 2)


def test_emoji_exactly_at_part_end() -> None:
    text = ALEF * 65 + EMOJI + ALEF * 10
    parts = split(text)
    assert parts == [ALEF * 65 + EMOJI, ALEF * 10]
    assert ucs2_units(parts[0]) == 67


def test_all_emoji_text() -> None:
    text = EMOJI * 100  # 200 units, 33 emoji (66 units) per part
    parts = split(text)
    assert [len(p) for p in parts] == [33, 33, 33, 1]
    assert analyse(text) == SmsEncoding("ucs2", 200, 4)


def test_bmp_symbol_is_one_unit() -> None:
    assert analyse("✓" * 70) == SmsEncoding("ucs2", 70, 1)


# --- properties ----------------------------------------------------------------------------

_alphabet = st.sampled_from([*GSM_BASIC, *GSM_EXTENSION, ALEF, "ب", EMOJI, "é", "😀"])
_texts = st.one_of(
    st.text(alphabet=st.sampled_from(list(GSM_BASIC + GSM_EXTENSION)), max_size=500),
    st.text(alphabet=_alphabet, max_size=400),
    st.text(max_size=300),
)


@hsettings(max_examples=400, database=None, deadline=None)
@given(_texts)
def test_split_round_trips_and_respects_limits(text: str) -> None:
    parts = split(text)
    result = analyse(text)
    assert "".join(parts) == text
    assert len(parts) == result.segments >= 1
    measure = gsm_units if result.encoding == "gsm7" else ucs2_units
    assert result.units == measure(text)
    if len(parts) == 1:
        assert result.units <= (160 if result.encoding == "gsm7" else 70)
    else:
        limit = 153 if result.encoding == "gsm7" else 67
        assert all(0 < measure(p) <= limit for p in parts)
        # greedy: the next part's first char would not have fitted
        for p, nxt in itertools.pairwise(parts):
            assert measure(p) + measure(nxt[0]) > limit
