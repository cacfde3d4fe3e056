"""Fuzzing the answer parser and the engine with hostile replies (see tests/fuzz/targets.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callcenter.inquiry.definition import Question
from tests.fuzz import targets
from tests.fuzz.strategies import budget, question, reply


@budget(200)
@given(question, reply)
def test_any_reply_is_an_answer_or_a_reason(question: Question, text: str) -> None:
    targets.answer_parser(question, text)


@budget(100)
@given(st.integers(0, 3), reply)
def test_any_reply_at_any_point_gives_a_step_with_a_sendable_reply(answered: int, text: str) -> None:
    targets.engine_step(answered, text)
