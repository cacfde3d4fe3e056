"""An inquiry as the citizen meets it: each question's SMS and voice prompts, per language.

Staff check a question before it goes to hundreds of thousands of phones, so the preview
must be what the engine really sends, not a copy of its wording: the SMS comes from
:mod:`callcenter.inquiry.texts` (the same functions the SMS inbox and the campaign sender
call), its cost from :func:`callcenter.sms.encoding.analyse`, and the voice prompt ids from
:func:`callcenter.voice.ivr_prompts.question_ids` and :mod:`callcenter.prompts`, the ones
the IVR plays. Everything here is pure except :func:`rendered_prompts`, which looks at the
audio files.

Usage::

    wanted = prompt_keys(inquiry)
    preview = preview_inquiry(inquiry, rendered=rendered_prompts(settings.prompts_dir, wanted))
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from pathlib import Path

from callcenter.inquiry.definition import LANGUAGES, Inquiry, Language, Question, QuestionKind
from callcenter.inquiry.engine import Event, State, Step
from callcenter.inquiry.texts import invitation, reply_for
from callcenter.messages import N_
from callcenter.prompts import PromptError, inquiry_text_prompt_id
from callcenter.sms.encoding import Encoding, analyse
from callcenter.voice.ivr_prompts import question_ids
from callcenter.voice.recordings import audio_file

#: What the IVR plays instead of a free-text question: the answer is asked for by SMS.
TEXT_BY_SMS = "text-by-sms"
#: Said on a campaign call before the inquiry's own intro.
OUTBOUND_INTRO = "outbound-intro"
#: Said after the inquiry's thanks when the last answer is in.
THANK_YOU = "thank-you-answering"

PromptKey = tuple[Language, str]


@dataclass(frozen=True, slots=True)
class SmsPreview:
    """One SMS and what it costs: ``units`` are septets (GSM-7) or UTF-16 units (UCS-2)."""

    text: str
    encoding: Encoding
    units: int
    segments: int


@dataclass(frozen=True, slots=True)
class PromptPreview:
    """One prompt file the IVR plays; ``rendered`` is False while its WAV does not exist."""

    id: str
    rendered: bool


@dataclass(frozen=True, slots=True)
class LanguagePreview:
    language: Language
    sms: SmsPreview
    prompts: tuple[PromptPreview, ...]
    #: why the voice line cannot ask this question (a message id), or None
    voice_problem: str | None = None


#: A rating whose bounds the number prompts cannot say (below 0 or above 999,999).
UNSPEAKABLE_RANGE = N_("The voice line cannot read this range of answers aloud.")


@dataclass(frozen=True, slots=True)
class QuestionPreview:
    key: str
    kind: QuestionKind
    first: bool  # the first question travels inside the invitation SMS
    languages: tuple[LanguagePreview, ...]


@dataclass(frozen=True, slots=True)
class InquiryPreview:
    questions: tuple[QuestionPreview, ...]
    #: the last message: the SMS after the last answer and what the IVR says then
    thanks: tuple[LanguagePreview, ...]
    #: what a campaign call says before the first question (no SMS of its own)
    opening: tuple[tuple[Language, tuple[PromptPreview, ...]], ...]


def sms_preview(text: str) -> SmsPreview:
    cost = analyse(text)
    return SmsPreview(text=text, encoding=cost.encoding, units=cost.units, segments=cost.segments)


def question_sms(inquiry: Inquiry, question: Question, language: Language) -> str:
    """The SMS that asks ``question``: the first one is the campaign's invitation (intro,
    question, how to opt out); any other is the engine's reply that asks it."""
    if question.key == inquiry.first.key:
        return invitation(inquiry, question, language)
    text = reply_for(inquiry, Step(Event.ASK, State(question=question.key), question=question), language)
    assert text is not None  # an ASK always has words
    return text


def thanks_sms(inquiry: Inquiry, language: Language) -> str:
    """The SMS after the last answer."""
    text = reply_for(inquiry, Step(Event.COMPLETED, State()), language)
    assert text is not None
    return text


def question_prompt_ids(inquiry: Inquiry, question: Question, language: Language) -> tuple[str, ...]:
    """The prompt ids the IVR plays to ask ``question`` in ``language``, in order: the
    question and how to answer it by keypad; a free-text question is not asked by voice,
    the caller hears that it comes by SMS."""
    if question.kind is QuestionKind.TEXT:
        return (TEXT_BY_SMS,)
    return tuple(question_ids(inquiry, question, language))


def opening_prompt_ids(inquiry: Inquiry) -> tuple[str, ...]:
    """What a campaign call plays once answered, before the first question."""
    intro = (inquiry_text_prompt_id(inquiry.slug, "intro"),) if inquiry.intro.ar else ()
    return (OUTBOUND_INTRO, *intro)


def thanks_prompt_ids(inquiry: Inquiry) -> tuple[str, ...]:
    """What the IVR plays when the last answer is in."""
    return (inquiry_text_prompt_id(inquiry.slug, "thanks"), THANK_YOU)


def prompt_keys(inquiry: Inquiry) -> frozenset[PromptKey]:
    """Every (language, prompt id) the preview shows, to look up which files exist."""
    keys: set[PromptKey] = set()
    for language in LANGUAGES:
        ids = [*opening_prompt_ids(inquiry), *thanks_prompt_ids(inquiry)]
        for question in inquiry.questions:
            ids += _spoken(inquiry, question, language)[0]
        keys |= {(language, prompt_id) for prompt_id in ids}
    return frozenset(keys)


def rendered_prompts(prompts_dir: Path, keys: Iterable[PromptKey]) -> frozenset[PromptKey]:
    """Those of ``keys`` the IVR has a WAV file for: a studio recording, or the render under
    ``<prompts_dir>/audio/<language>/`` (:func:`callcenter.voice.recordings.audio_file`)."""
    found: set[PromptKey] = set()
    for language, prompt_id in keys:
        try:
            if audio_file(prompts_dir, language, prompt_id) is not None:
                found.add((language, prompt_id))
        except PromptError:
            continue
    return frozenset(found)


def _spoken(inquiry: Inquiry, question: Question, language: Language) -> tuple[tuple[str, ...], str | None]:
    try:
        return question_prompt_ids(inquiry, question, language), None
    except ValueError:  # compose_number refuses the bounds
        return (), UNSPEAKABLE_RANGE


def _language(
    inquiry: Inquiry, question: Question, language: Language, rendered: Container[PromptKey]
) -> LanguagePreview:
    ids, problem = _spoken(inquiry, question, language)
    return LanguagePreview(
        language,
        sms_preview(question_sms(inquiry, question, language)),
        tuple(PromptPreview(i, (language, i) in rendered) for i in ids),
        problem,
    )


def preview_inquiry(inquiry: Inquiry, *, rendered: Container[PromptKey] = frozenset()) -> InquiryPreview:
    """Every question in both languages; ``rendered`` says which prompt files exist."""

    def prompts(language: Language, ids: Iterable[str]) -> tuple[PromptPreview, ...]:
        return tuple(PromptPreview(i, (language, i) in rendered) for i in ids)

    questions = tuple(
        QuestionPreview(
            key=question.key,
            kind=question.kind,
            first=position == 0,
            languages=tuple(_language(inquiry, question, language, rendered) for language in LANGUAGES),
        )
        for position, question in enumerate(inquiry.questions)
    )
    thanks = tuple(
        LanguagePreview(
            language,
            sms_preview(thanks_sms(inquiry, language)),
            prompts(language, thanks_prompt_ids(inquiry)),
        )
        for language in LANGUAGES
    )
    opening = tuple((language, prompts(language, opening_prompt_ids(inquiry))) for language in LANGUAGES)
    return InquiryPreview(questions=questions, thanks=thanks, opening=opening)
