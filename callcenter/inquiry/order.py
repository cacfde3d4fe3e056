"""Randomised option order: each citizen sees a choice question's options in an order of
their own, so that the pull of the first position (primacy, strong on SMS lists and in voice
menus) averages out over respondents and can be measured.

The order is drawn from a keyed hash (HMAC-SHA256) of the inquiry, the question and the
citizen's id: the same citizen gets the same order on every retry, on SMS and by phone, on
every worker, with nothing stored before the answer; without the key nobody can tell which
order a citizen got. Sorting the options by their keyed hash is a uniformly random
permutation (ties between 256-bit values do not happen).

Only choice questions are shuffled: a rating scale and yes/no keep their natural order
(reversing a scale for half the respondents would be a different question).

Pure. The channels call :func:`for_citizen` on the inquiry before the engine, so the SMS text
and the voice menu list the options in the citizen's order and the keyed digit maps through
it (``"1"`` is the option shown first); the answer stores :func:`order_text` of
``question.order``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from callcenter.inquiry.definition import Inquiry, Question, QuestionKind


def option_order(inquiry: str, question: str, citizen: int, count: int, *, key: str) -> tuple[int, ...]:
    """The 1-based positions of ``count`` options in the order this citizen sees them."""
    secret = key.encode()

    def rank(position: int) -> bytes:
        message = f"{inquiry}\x1f{question}\x1f{citizen}\x1f{position}".encode()
        return hmac.new(secret, message, hashlib.sha256).digest()

    return tuple(sorted(range(1, count + 1), key=rank))


def shown(question: Question, order: tuple[int, ...]) -> Question:
    """The question with its options in ``order`` (positions in the definition, 1-based)."""
    if sorted(order) != list(range(1, len(question.options) + 1)):
        raise ValueError(f"{order!r} is not an order of {len(question.options)} options")
    return replace(question, options=tuple(question.options[i - 1] for i in order), order=order)


def for_citizen(inquiry: Inquiry, citizen: int | None, *, key: str) -> Inquiry:
    """The inquiry as ``citizen`` sees it: unchanged unless its options are randomised."""
    if not inquiry.randomise_options or citizen is None:
        return inquiry
    questions = tuple(
        shown(q, option_order(inquiry.slug, q.key, citizen, len(q.options), key=key))
        if q.kind is QuestionKind.CHOICE and len(q.options) > 1
        else q
        for q in inquiry.questions
    )
    return replace(inquiry, questions=questions)


def order_text(order: tuple[int, ...] | None) -> str | None:
    """As stored with the answer: ``"2,1,3"`` (None: the options were shown as defined)."""
    return None if order is None else ",".join(map(str, order))


def parse_order(text: str | None, count: int) -> tuple[int, ...] | None:
    """A stored order back, or None when there is none or it does not fit ``count`` options
    (the question changed since: such answers are left out of the order effects)."""
    if not text:
        return None
    try:
        order = tuple(int(part) for part in text.split(","))
    except ValueError:
        return None
    return order if sorted(order) == list(range(1, count + 1)) else None
