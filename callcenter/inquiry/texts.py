"""SMS wording of the engine's steps, in Arabic and English (pure)."""

from __future__ import annotations

from callcenter.inquiry.definition import Inquiry, Language, Question, QuestionKind
from callcenter.inquiry.engine import Event, Step

_T: dict[str, dict[Language, str]] = {
    "rating_hint": {
        "ar": "أرسل رقماً من {lo} إلى {hi}",
        "en": "Reply with a number from {lo} to {hi}",
    },
    "number_hint": {"ar": "أرسل رقماً", "en": "Reply with a number"},
    "yes_no_hint": {"ar": "أرسل 1 (نعم) أو 2 (لا)", "en": "Reply 1 (yes) or 2 (no)"},
    "choice_hint": {"ar": "أرسل رقم اختيارك", "en": "Reply with the number of your choice"},
    "text_hint": {"ar": "أرسل إجابتك", "en": "Reply with your answer"},
    "invalid": {"ar": "عذراً، لم نفهم إجابتك.", "en": "Sorry, we did not understand your reply."},
    "rating_invalid": {
        "ar": "عذراً، أرسل رقماً من {lo} إلى {hi}.",
        "en": "Sorry, please reply with a number from {lo} to {hi}.",
    },
    "gave_up": {"ar": "سننتقل إلى السؤال التالي.", "en": "Let us move on to the next question."},
    "stop_footer": {"ar": "لإيقاف الرسائل أرسل توقف", "en": "Reply STOP to opt out"},
    "opted_out": {
        "ar": "تم إيقاف رسائل 1415 إليك. لإعادة الاشتراك أرسل ابدأ.",
        "en": "You will receive no more messages from 1415. Reply START to re-join.",
    },
    "opted_in": {"ar": "مرحباً بعودتك إلى 1415.", "en": "Welcome back to 1415."},
    "help": {
        "ar": "هذا استبيان وزارة الحكم المحلي عبر 1415. أجب على السؤال برقم أو كلمة. "
        "لإيقاف الرسائل أرسل توقف. للاستفسار اتصل بـ 1415.",
        "en": "This is a Ministry of Local Government inquiry on 1415. Answer the question "
        "with a number or a word. Reply STOP to opt out. For help call 1415.",
    },
    "already_completed": {
        "ar": "شكراً، لقد أكملت هذا الاستبيان.",
        "en": "Thank you, you have already completed this inquiry.",
    },
    "closed": {
        "ar": "شكراً لتواصلك. هذا الاستبيان مغلق الآن.",
        "en": "Thank you for your message. This inquiry is now closed.",
    },
    "no_inquiry": {
        "ar": "شكراً لتواصلك مع 1415. لا يوجد استبيان مفتوح لك الآن. للخدمات اتصل بـ 1415.",
        "en": "Thank you for contacting 1415. There is no open inquiry for you now. For services call 1415.",
    },
    "unknown_sender": {
        "ar": "شكراً لتواصلك مع 1415. رقمك غير مسجل في الاستبيانات. للخدمات اتصل بـ 1415.",
        "en": "Thank you for contacting 1415. Your number is not registered for inquiries. "
        "For services call 1415.",
    },
    "thanks": {"ar": "شكراً لمشاركتكم.", "en": "Thank you for taking part."},
}


def phrase(key: str, language: Language, **values: object) -> str:
    return _T[key][language].format(**values)


def question_text(question: Question, language: Language) -> str:
    """The question with the hint that tells how to answer it."""
    lines = [question.text.get(language)]
    if question.kind is QuestionKind.CHOICE:
        lines += [f"{i}) {o.label.get(language)}" for i, o in enumerate(question.options, 1)]
        lines.append(phrase("choice_hint", language))
    elif question.kind is QuestionKind.RATING:
        lo, hi = question.bounds
        lines.append(phrase("rating_hint", language, lo=lo, hi=hi))
    elif question.kind is QuestionKind.YES_NO:
        lines.append(phrase("yes_no_hint", language))
    elif question.kind is QuestionKind.NUMBER:
        lines.append(phrase("number_hint", language))
    return "\n".join(lines)


def invitation(inquiry: Inquiry, question: Question, language: Language) -> str:
    """The first message of a campaign: intro, first question, how to opt out."""
    parts = [inquiry.intro.get(language), question_text(question, language)]
    parts.append(phrase("stop_footer", language))
    return "\n".join(p for p in parts if p)


def reply_for(inquiry: Inquiry, step: Step, language: Language) -> str | None:
    """The SMS answering one step (None: stay silent)."""
    asked = question_text(step.question, language) if step.question else ""
    match step.event:
        case Event.ASK:
            return f"{phrase('gave_up', language)}\n{asked}" if step.gave_up else asked
        case Event.REPROMPT:
            return f"{_invalid(step, language)}\n{asked}"
        case Event.COMPLETED:
            return inquiry.thanks.get(language) or phrase("thanks", language)
        case Event.ALREADY_COMPLETED:
            return phrase("already_completed", language)
        case Event.OPTED_OUT:
            return phrase("opted_out", language)
        case Event.OPTED_IN:
            return "\n".join(p for p in (phrase("opted_in", language), asked) if p)
        case Event.HELP:
            return f"{phrase('help', language)}\n{asked}"
        case Event.CLOSED:
            return phrase("closed", language)
        case Event.IGNORED:
            return None
    return None


def _invalid(step: Step, language: Language) -> str:
    question = step.question
    if question is not None and question.kind is QuestionKind.RATING:
        lo, hi = question.bounds
        return phrase("rating_invalid", language, lo=lo, hi=hi)
    return phrase("invalid", language)
