"""What a caller waiting for an agent is told about their place and wait, as prompt ids.

Usage::

    announcement_ids("ar", position=3, wait_s=620.0)
    # position-you-are ord-3 position-in-line wait-expected num-11-f noun-minute
    # "أنت المتصل الثالث في قائمة الانتظار. مدة الانتظار المتوقعة إحدى عشرة دقيقة"

Arabic counts with ``arabic_numbers`` (the caller is المتصل, so the ordinal is masculine; a
minute is feminine: دقيقة واحدة، دقيقتان، ثلاث دقائق، إحدى عشرة دقيقة); English says
"caller number three" and "eleven minutes" from the plain numbers. Every id is in the prompt
catalogue for positions up to ``MAX_ORDINAL`` and waits up to ``MAX_MINUTES`` (a test checks).
"""

from __future__ import annotations

from typing import Final

from callcenter.arabic_numbers import MAX_ORDINAL, MINUTE, announcement_tokens, ordinal_tokens
from callcenter.inquiry.definition import Language
from callcenter.prompts import compose_number
from callcenter.routing.estimate import minutes_to_announce

#: a longer wait is announced as "more than an hour"
MAX_MINUTES: Final = 60


def position_ids(language: Language, position: int) -> list[str]:
    """ "You are next", or "you are the third caller in line"; nothing past ``MAX_ORDINAL``."""
    if position <= 1:
        return ["you-are-next"]
    if position > MAX_ORDINAL:
        return []
    number = ordinal_tokens(position) if language == "ar" else compose_number(position, "en")
    return ["position-you-are", *number, "position-in-line"]


def wait_ids(language: Language, wait_s: float | None) -> list[str]:
    """The expected wait in whole minutes (rounded up); ``None``: nobody serves the queue, so
    the caller is told there is no figure rather than given one."""
    if wait_s is None:
        return ["no-agent-now"]
    minutes = minutes_to_announce(wait_s)
    if minutes > MAX_MINUTES:
        return ["wait-over-an-hour"]
    if language == "ar":
        return ["wait-expected", *announcement_tokens(minutes, MINUTE)]
    noun = "noun-minute" if minutes == 1 else "noun-minute-pl"
    return ["wait-expected", *compose_number(minutes, "en"), noun]


def announcement_ids(language: Language, *, position: int, wait_s: float | None) -> list[str]:
    return [*position_ids(language, position), *wait_ids(language, wait_s)]
