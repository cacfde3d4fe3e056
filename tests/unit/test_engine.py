"""The inquiry engine as a pure state machine: (inquiry, state, input) -> step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.inquiry.definition import (
    DefinitionError,
    Inquiry,
    InquiryStatus,
    Option,
    Question,
    QuestionKind,
    Text,
)
from callcenter.inquiry.engine import Event, SessionStatus, State, advance, start
from callcenter.inquiry.schema import InquiryFileError, parse_inquiry_yaml
from callcenter.inquiry.texts import invitation, reply_for

SAMPLE = Path(__file__).parents[2] / "callcenter" / "samples" / "return-of-life.yaml"


def inquiry(status: InquiryStatus = InquiryStatus.RUNNING) -> Inquiry:
    return parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8")).definition(status)


def test_start_asks_the_first_question() -> None:
    step = start(inquiry())
    assert step.event is Event.ASK
    assert step.question is not None and step.question.key == "satisfaction"
    assert step.state.question == "satisfaction"


def test_valid_answer_is_recorded_and_skip_logic_picks_the_next_question() -> None:
    inq = inquiry()
    low = advance(inq, start(inq).state, "٢")
    assert low.answer is not None and low.answer.value == "2"
    assert low.question is not None and low.question.key == "problem"
    high = advance(inq, start(inq).state, "5")
    assert high.question is not None and high.question.key == "recommend"
    assert high.state.answered == frozenset({"satisfaction"})


def test_last_answer_completes_the_session() -> None:
    inq = inquiry()
    state = advance(inq, start(inq).state, "4").state
    done = advance(inq, state, "نعم")
    assert done.event is Event.COMPLETED
    assert done.answer is not None and done.answer.value == "yes"
    assert done.state.status is SessionStatus.COMPLETED
    again = advance(inq, done.state, "1")
    assert again.event is Event.ALREADY_COMPLETED and again.answer is None


def test_invalid_answer_reprompts_then_gives_up_after_the_retries() -> None:
    inq = inquiry()
    state = start(inq).state
    first = advance(inq, state, "banana")
    assert first.event is Event.REPROMPT and first.answer is None
    assert first.state.attempts == 1 and first.error
    second = advance(inq, first.state, "9")
    assert second.event is Event.REPROMPT and second.state.attempts == 2
    third = advance(inq, second.state, "🙂")
    assert third.gave_up and third.event is Event.ASK
    assert third.question is not None and third.question.key == "recommend"  # the "*" path
    assert third.answer is None and "satisfaction" not in third.state.answered


def test_stop_opts_out_and_start_resumes_where_the_citizen_was() -> None:
    inq = inquiry()
    state = advance(inq, start(inq).state, "3").state
    stopped = advance(inq, state, "توقف")
    assert stopped.event is Event.OPTED_OUT
    assert advance(inq, stopped.state, "5").event is Event.IGNORED
    back = advance(inq, stopped.state, "START")
    assert back.event is Event.OPTED_IN
    assert back.question is not None and back.question.key == "recommend"


def test_help_repeats_the_current_question_without_counting_an_attempt() -> None:
    inq = inquiry()
    helped = advance(inq, start(inq).state, "مساعدة")
    assert helped.event is Event.HELP and helped.state.attempts == 0
    assert helped.question is not None and helped.question.key == "satisfaction"


def test_closed_inquiry_takes_no_answers_but_paused_still_does() -> None:
    state = start(inquiry()).state
    assert advance(inquiry(InquiryStatus.CLOSED), state, "3").event is Event.CLOSED
    assert advance(inquiry(InquiryStatus.PAUSED), state, "3").answer is not None


def test_questions_answered_on_another_channel_are_skipped() -> None:
    inq = inquiry()
    state = State(answered=frozenset({"satisfaction"}), values=(("satisfaction", "2"),))
    step = start(inq, state)
    assert step.question is not None and step.question.key == "problem"  # follows "2"
    state = State(answered=frozenset({"satisfaction"}), values=(("satisfaction", "5"),))
    step = start(inq, state)
    assert step.question is not None and step.question.key == "recommend"
    everything = State(answered=frozenset(q.key for q in inq.questions))
    assert start(inq, everything).event is Event.COMPLETED


def test_definition_errors_are_clear() -> None:
    with pytest.raises(DefinitionError, match="skip target"):
        Inquiry("x", Text("x"), (Question("a", QuestionKind.RATING, Text("a"), next={"1": "zz"}),))
    with pytest.raises(DefinitionError, match="needs options"):
        Question("c", QuestionKind.CHOICE, Text("c"))
    with pytest.raises(DefinitionError, match="empty"):
        Question("r", QuestionKind.RATING, Text("r"), min_value=5, max_value=1)
    with pytest.raises(InquiryFileError, match="questions"):
        parse_inquiry_yaml("slug: x\ntitle: {ar: س}\nquestions: []\n")
    with pytest.raises(InquiryFileError, match="not valid YAML"):
        parse_inquiry_yaml("slug: [unclosed")


def test_sms_texts_are_arabic_first_with_english_for_english_citizens() -> None:
    inq = inquiry()
    ar = invitation(inq, inq.first, "ar")
    en = invitation(inq, inq.first, "en")
    assert "ما مدى رضاك" in ar and "توقف" in ar
    assert "How satisfied" in en and "STOP" in en
    step = advance(inq, start(inq).state, "7")
    assert "من 1 إلى 5" in (reply_for(inq, step, "ar") or "")
    assert "from 1 to 5" in (reply_for(inq, step, "en") or "")


def test_choice_question_lists_numbered_options() -> None:
    q = Question(
        "c",
        QuestionKind.CHOICE,
        Text("اختر", "Choose"),
        options=(Option("a", Text("أ", "A")), Option("b", Text("ب", "B"))),
    )
    inq = Inquiry("c", Text("c"), (q,), status=InquiryStatus.RUNNING)
    text = reply_for(inq, start(inq), "en") or ""
    assert "1) A" in text and "2) B" in text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=12))
def test_any_sequence_of_inputs_keeps_the_session_consistent(inputs: list[str]) -> None:
    inq = inquiry()
    step = start(inq)
    recorded: list[str] = []
    for text in inputs:
        step = advance(inq, step.state, text)
        if step.answer is not None:
            assert step.answer.question.key not in recorded  # never twice
            recorded.append(step.answer.question.key)
        state = step.state
        assert state.attempts <= max(q.retries for q in inq.questions)
        if state.status is SessionStatus.COMPLETED:
            assert state.question is None
        assert set(recorded) == set(state.answered)
    assert replace(step.state) == step.state


def test_start_word_on_an_active_session_is_read_as_an_answer_not_a_command() -> None:
    inq = inquiry()
    step = advance(inq, start(inq).state, "أبداً")  # "never" normalises like "ابدأ"
    assert step.event is Event.REPROMPT and step.state.attempts == 1


def test_a_sentence_starting_with_stop_answers_a_free_text_question() -> None:
    q = Question("why", QuestionKind.TEXT, Text("لماذا؟", "Why?"))
    inq = Inquiry("t", Text("t"), (q,), status=InquiryStatus.RUNNING)
    answer = advance(inq, start(inq).state, "توقف الكهرباء يوميا")
    assert answer.event is Event.COMPLETED and answer.answer is not None
    assert advance(inq, start(inq).state, "توقف").event is Event.OPTED_OUT


def test_an_inquiry_title_longer_than_its_column_or_an_all_digit_slug_is_refused() -> None:
    import pydantic
    import pytest

    from callcenter.inquiry.schema import parse_inquiry_yaml

    good = "slug: ok-1\ntitle: {ar: عنوان}\nquestions:\n  - {key: q1, kind: yes_no, text: {ar: سؤال}}\n"
    assert parse_inquiry_yaml(good).slug == "ok-1"
    for bad in (good.replace("ok-1", "2025"), good.replace("عنوان", "ع" * 301)):
        with pytest.raises((pydantic.ValidationError, ValueError)):
            parse_inquiry_yaml(bad)
