"""Randomised option order: each citizen's order is drawn from a keyed hash, stable across
retries and channels; the SMS text, the voice menu and the digit replied all follow it; and
the order effects are measured from the stored orders."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from callcenter.analysis.order_effects import order_effects
from callcenter.inquiry.definition import Inquiry, InquiryStatus, Option, Question, QuestionKind, Text
from callcenter.inquiry.engine import State, advance
from callcenter.inquiry.order import for_citizen, option_order, order_text, parse_order, shown
from callcenter.inquiry.texts import question_text
from callcenter.voice.ivr_prompts import question_ids

KEY = "test-pseudonym-key"
PRIORITY = Question(
    key="priority",
    kind=QuestionKind.CHOICE,
    text=Text("ما الأولوية؟", "What comes first?"),
    options=(
        Option("roads", Text("الطرق", "Roads")),
        Option("water", Text("المياه", "Water")),
        Option("power", Text("الكهرباء", "Power")),
    ),
    id=7,
)
RATING = Question(key="rating", kind=QuestionKind.RATING, text=Text("قيّم", "Rate"), id=8)
YES_NO = Question(key="ok", kind=QuestionKind.YES_NO, text=Text("موافق؟", "Agree?"), id=9)
INQUIRY = Inquiry(
    slug="roads",
    title=Text("الطرق", "Roads"),
    questions=(PRIORITY, RATING, YES_NO),
    status=InquiryStatus.RUNNING,
    randomise_options=True,
)


def test_the_same_citizen_always_gets_the_same_order() -> None:
    orders = {for_citizen(INQUIRY, 42, key=KEY).first.order for _ in range(5)}
    assert len(orders) == 1
    (order,) = orders
    assert order is not None and sorted(order) == [1, 2, 3]
    # a retry, another channel, another worker: the same inputs, the same order
    assert option_order("roads", "priority", 42, 3, key=KEY) == order


def test_orders_are_drawn_evenly_and_depend_on_the_key_citizen_and_question() -> None:
    drawn = Counter(option_order("roads", "priority", citizen, 3, key=KEY) for citizen in range(3000))
    assert len(drawn) == 6  # every order of three options occurs
    assert all(400 < n < 600 for n in drawn.values()), drawn  # about 500 each
    citizens = [option_order("roads", "priority", c, 5, key=KEY) for c in range(50)]
    assert citizens != [option_order("roads", "priority", c, 5, key="another") for c in range(50)]
    assert citizens != [option_order("roads", "other", c, 5, key=KEY) for c in range(50)]


def test_only_choice_questions_are_shuffled_and_only_when_the_inquiry_says_so() -> None:
    seen = for_citizen(INQUIRY, 5, key=KEY)
    assert seen.questions[1] == RATING and seen.questions[2] == YES_NO
    assert seen.first.order is not None
    plain = replace(INQUIRY, randomise_options=False)
    assert for_citizen(plain, 5, key=KEY) is plain
    assert for_citizen(INQUIRY, None, key=KEY) is INQUIRY


def _citizen_with(first: str) -> int:
    """A citizen id whose order shows ``first`` first."""
    for citizen in range(1000):
        if for_citizen(INQUIRY, citizen, key=KEY).first.options[0].value == first:
            return citizen
    raise AssertionError(first)


@pytest.mark.parametrize("first", ["roads", "water", "power"])
def test_a_citizen_answering_1_gets_the_option_shown_first_to_them(first: str) -> None:
    seen = for_citizen(INQUIRY, _citizen_with(first), key=KEY)
    step = advance(seen, State(question="priority"), "1")
    assert step.answer is not None and step.answer.value == first
    assert order_text(step.answer.question.order) == order_text(seen.first.order)
    # a label still names its own option, wherever it was listed
    assert advance(seen, State(question="priority"), "الكهرباء").answer.value == "power"  # type: ignore[union-attr]


def test_the_sms_text_lists_the_options_in_the_citizens_order() -> None:
    citizen = _citizen_with("power")
    seen = for_citizen(INQUIRY, citizen, key=KEY).first
    lines = question_text(seen, "ar").splitlines()
    assert lines[1] == "1) الكهرباء"
    assert lines[1:4] == [f"{i}) {o.label.ar}" for i, o in enumerate(seen.options, 1)]


def test_the_voice_menu_plays_each_option_recording_at_its_shown_place() -> None:
    seen = for_citizen(INQUIRY, _citizen_with("power"), key=KEY)
    ids = question_ids(seen, seen.first, "ar")
    assert seen.first.order is not None
    options = [i for i in ids if "-opt" in i]
    # the recordings are filed under their place in the definition: power is option 3
    assert options[0] == "q-roads-priority-opt3"
    assert options == [f"q-roads-priority-opt{n}" for n in seen.first.order]
    assert ids[ids.index(options[0]) + 1] == "press"


def test_stored_orders_read_back_and_bad_ones_are_ignored() -> None:
    assert order_text((2, 1, 3)) == "2,1,3" and order_text(None) is None
    assert parse_order("2,1,3", 3) == (2, 1, 3)
    assert parse_order("2,1", 3) is None and parse_order("2,x,1", 3) is None
    assert parse_order("1,1,2", 3) is None and parse_order(None, 3) is None
    with pytest.raises(ValueError, match="not an order"):
        shown(PRIORITY, (1, 1, 2))


def _synthetic(primacy: float, citizens: int = 1200) -> list[tuple[int, str, str | None, int]]:
    """Each citizen picks the option shown first with probability ``primacy`` more than the
    others (a deterministic draw), the rest spread evenly."""
    rows: Counter[tuple[int, str, str | None]] = Counter()
    for citizen in range(citizens):
        order = option_order("roads", "priority", citizen, 3, key=KEY)
        u = ((citizen * 7919) % 1000) / 1000  # evenly spread over [0, 1)
        base = (1 - primacy) / 3
        place = 0 if u < base + primacy else 1 if u < 2 * base + primacy else 2
        rows[(7, PRIORITY.options[order[place] - 1].value, order_text(order))] += 1
    return [(q, v, o, n) for (q, v, o), n in rows.items()]


def test_order_effects_show_a_favoured_first_position() -> None:
    (effects,) = order_effects(INQUIRY.questions, _synthetic(primacy=0.3))
    assert effects.answers == 1200 and effects.question.key == "priority"
    for option in effects.options:
        assert option.flag == "first" and not option.hidden
        assert option.first is not None and option.later is not None and option.gap is not None
        assert option.first.estimate == pytest.approx(0.533, abs=0.06)  # 0.3 + 0.7/3
        assert option.later.estimate == pytest.approx(0.233, abs=0.06)
        assert option.gap.low is not None and option.gap.low > 0
        assert len(option.by_position) == 3
        assert option.by_position[0] == option.first


def test_without_primacy_no_order_effect_is_flagged() -> None:
    (effects,) = order_effects(INQUIRY.questions, _synthetic(primacy=0.0))
    assert {o.flag for o in effects.options} == {"none"}


def test_order_effects_hide_small_cells_and_skip_answers_without_order() -> None:
    rows = [(7, "roads", "1,2,3", 3), (7, "water", "2,1,3", 40), (7, "power", None, 99), (8, "4", None, 5)]
    (effects,) = order_effects(INQUIRY.questions, rows)
    assert effects.answers == 43
    roads = next(o for o in effects.options if o.value == "roads")
    assert roads.hidden and roads.first is None and roads.flag == "insufficient"
    assert order_effects(INQUIRY.questions, [(7, "power", None, 99)]) == ()
