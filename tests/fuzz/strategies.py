"""Hostile input for the fuzz tests: the characters and shapes that break readers.

Plain ``st.text()`` rarely produces what a citizen's phone, a gateway or a spreadsheet really
sends, so the strategies mix it with pieces chosen on purpose: Arabic-Indic and Persian digits,
bidi and zero-width marks, harakat and tatweel, lone surrogates, NUL and other controls, the
service keywords, separators, long runs of combining marks, and very long repetitions.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from callcenter.inquiry.definition import Option, Question, QuestionKind, Text
from tests.fuzz.targets import INQUIRY

PIECES = (
    *"0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹",
    *"-.,/٫٬−–⁄",
    "\u200f", "\u200e", "\u202b", "\u202e", "\u2066", "\u2069", "\u200d", "\u200b", "\ufeff",
    "\u0640", "\u064b", "\u0651", "\u0670", "\u0301" * 40, "\ufe0f", "\u20e3",
    "\x00", "\x1b", "\r\n", "\t", "\x85", "\u2028", "\ud800", "\udfff",
    " ", "نعم", "لا", "ايوه", "yes", "NO", "STOP", "توقف", "إلغاء", "START", "مساعدة",
    "الماء", "الثانية", "رقم", "من", "of", "1,000", "٣ من ٥", "3/5", "-", ".5", "😀", "ﷺ", "ﻻ",
)  # fmt: skip

#: a huge reply: up to 1,000 times the longest SMS anyone sends (10 concatenated segments);
#: the CI run stays at 20 times, to keep its time
HUGE = 200_000 if settings.get_current_profile_name() == "fuzz" else 30_000

any_char = st.characters(exclude_categories=())  # every code point, lone surrogates too
pieces = st.sampled_from(PIECES)
fragment = st.lists(st.one_of(pieces, st.text(any_char, max_size=8)), max_size=12).map("".join)

#: a reply: mostly short and hostile, sometimes a huge repetition (the time bound's case)
reply = st.one_of(
    fragment,
    fragment,
    st.text(any_char, max_size=300),
    st.builds(lambda part, times: (part * times)[:HUGE], fragment.filter(bool), st.integers(100, 20_000)),
)

_TEXT = Text("سؤال", "Question")
EDGE_QUESTIONS = (
    Question("r", QuestionKind.RATING, _TEXT, min_value=0, max_value=10),
    Question("n", QuestionKind.NUMBER, _TEXT, min_value=-5, max_value=120),
    Question("free", QuestionKind.TEXT, _TEXT),
    Question(
        "c",
        QuestionKind.CHOICE,
        _TEXT,
        options=(
            Option("one-two", Text("1-2", "1-2")),
            Option("water", Text("الماء", "Water"), ("مياه", "ماء")),
            Option("none", Text("لا شيء", "None")),
        ),
    ),
)
question = st.sampled_from(INQUIRY.questions + EDGE_QUESTIONS)


#: the targets bound their own time; a database fixture is meant to persist across examples
SUPPRESSED = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture)


def budget(examples: int) -> settings:
    """The CI bound: ``examples`` per test, the same ones every run (derandomised: a CI run
    never fails on an input no earlier run tried), no deadline (the targets bound their own
    time). Under ``--hypothesis-profile=fuzz`` (see tests/fuzz/conftest.py) the profile's
    much larger, random run applies instead."""
    if settings.get_current_profile_name() == "fuzz":
        return settings(settings.get_profile("fuzz"))
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=SUPPRESSED,
    )


FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20000"))
