"""The preview of an inquiry is what the engine sends and the IVR plays, with its SMS cost."""

from __future__ import annotations

from pathlib import Path

from callcenter.inquiry.definition import Inquiry, Option, Question, QuestionKind, Text
from callcenter.inquiry.engine import Event, State, Step
from callcenter.inquiry.preview import (
    TEXT_BY_SMS,
    preview_inquiry,
    prompt_keys,
    question_prompt_ids,
    question_sms,
    rendered_prompts,
    sms_preview,
    thanks_sms,
)
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.inquiry.texts import invitation, reply_for
from callcenter.voice.ivr_prompts import question_ids
from tests.factories import SAMPLE


def _inquiry(*questions: Question, intro: Text = Text("")) -> Inquiry:
    return Inquiry(slug="pv", title=Text("معاينة", "Preview"), questions=questions, intro=intro)


RATING = Question("score", QuestionKind.RATING, Text("ما تقييمك؟", "Your score?"))
YES_NO = Question("again", QuestionKind.YES_NO, Text("هل ستعود؟", "Again?"))
CHOICE = Question(
    "pick",
    QuestionKind.CHOICE,
    Text("اختر", "Pick one"),
    options=(Option("a", Text("أ", "A")), Option("b", Text("ب", "B"))),
)
FREE = Question("why", QuestionKind.TEXT, Text("لماذا؟", "Why?"))


def test_a_short_english_question_in_gsm_characters_is_one_gsm7_segment() -> None:
    preview = preview_inquiry(_inquiry(YES_NO, RATING))
    english = next(lang for lang in preview.questions[1].languages if lang.language == "en")
    assert english.sms.text == "Your score?\nReply with a number from 1 to 5"
    assert (english.sms.encoding, english.sms.segments) == ("gsm7", 1)


def test_an_arabic_question_is_sent_in_ucs2() -> None:
    preview = preview_inquiry(_inquiry(RATING))
    arabic = next(lang for lang in preview.questions[0].languages if lang.language == "ar")
    assert arabic.sms.encoding == "ucs2"
    assert arabic.sms.units == len(arabic.sms.text)


def test_a_long_question_costs_several_segments() -> None:
    long_text = Text("س" * 150, "word " * 70)
    preview = preview_inquiry(_inquiry(YES_NO, Question("long", QuestionKind.NUMBER, long_text)))
    arabic, english = preview.questions[1].languages
    assert arabic.sms.encoding == "ucs2" and arabic.sms.segments == 3  # 161 UTF-16 units: 3 parts of 67
    assert english.sms.encoding == "gsm7" and english.sms.segments == 3  # 370 septets: 3 parts of 153
    assert sms_preview("x" * 160).segments == 1 and sms_preview("x" * 161).segments == 2


def test_the_first_question_is_the_invitation_and_the_others_what_the_engine_replies() -> None:
    inquiry = _inquiry(RATING, CHOICE, intro=Text("مرحباً", "Hello"))
    for language in ("ar", "en"):
        assert question_sms(inquiry, RATING, language) == invitation(inquiry, RATING, language)
        asked = reply_for(inquiry, Step(Event.ASK, State(question="pick"), question=CHOICE), language)
        assert question_sms(inquiry, CHOICE, language) == asked
    assert question_sms(inquiry, RATING, "en").startswith("Hello\nYour score?")
    assert question_sms(inquiry, CHOICE, "en") == "Pick one\n1) A\n2) B\nReply with the number of your choice"


def test_the_voice_prompts_are_the_ones_the_ivr_plays() -> None:
    inquiry = _inquiry(RATING, CHOICE, FREE)
    for language in ("ar", "en"):
        assert question_prompt_ids(inquiry, CHOICE, language) == tuple(
            question_ids(inquiry, CHOICE, language)
        )
    assert question_prompt_ids(inquiry, RATING, "ar") == ("q-pv-score", "rating-hint")
    assert question_prompt_ids(inquiry, CHOICE, "ar")[:3] == ("q-pv-pick", "q-pv-pick-opt1", "press")
    assert question_prompt_ids(inquiry, FREE, "en") == (TEXT_BY_SMS,)


def test_the_thanks_is_the_engines_completion_message() -> None:
    inquiry = _inquiry(RATING)
    assert thanks_sms(inquiry, "en") == "Thank you for taking part."
    preview = preview_inquiry(inquiry)
    assert [t.prompts[0].id for t in preview.thanks] == ["q-pv-_thanks", "q-pv-_thanks"]
    assert [p.id for p in preview.opening[0][1]] == ["outbound-intro"]  # no intro text: no intro prompt


def test_prompts_are_marked_rendered_only_when_their_wav_exists(tmp_path: Path) -> None:
    inquiry = parse_inquiry_yaml(SAMPLE.read_text(encoding="utf-8")).definition()
    wav = tmp_path / "audio" / "ar" / "q-return-of-life-roads-satisfaction.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF")
    keys = prompt_keys(inquiry)
    assert ("en", "q-return-of-life-roads-problem-opt4") in keys
    found = rendered_prompts(tmp_path, keys)
    assert found == {("ar", "q-return-of-life-roads-satisfaction")}
    studio = tmp_path / "recordings" / "en" / "q-return-of-life-roads-problem.wav"  # wins over espeak
    studio.parent.mkdir(parents=True)
    studio.write_bytes(b"RIFF")
    assert rendered_prompts(tmp_path, keys) == found | {("en", "q-return-of-life-roads-problem")}
    preview = preview_inquiry(inquiry, rendered=found)
    arabic, english = preview.questions[0].languages
    assert arabic.prompts[0].rendered and not english.prompts[0].rendered
    assert all(not p.rendered for p in arabic.prompts[1:])


def test_a_range_the_number_prompts_cannot_say_is_flagged_not_raised() -> None:
    odd = Question("temp", QuestionKind.RATING, Text("الحرارة", "Temperature"), min_value=-5, max_value=5)
    preview = preview_inquiry(_inquiry(odd))
    for language in preview.questions[0].languages:
        assert language.prompts == () and language.voice_problem is not None
        assert ("-5 إلى 5" if language.language == "ar" else "from -5 to 5") in language.sms.text
    assert prompt_keys(_inquiry(odd))  # the other prompts are still looked up
