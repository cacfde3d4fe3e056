"""How many SMS segments a text costs, and where a phone would cut it.

A national poll goes to hundreds of thousands of people, so one character too many
(an emoji, a single Arabic word in a Latin text) can double or triple the bill. This
module answers the question before sending, with the rules handsets and SMSCs apply:

* GSM 03.38 (7-bit): 160 septets alone, 153 per part once concatenated (the user data
  header takes 7). Characters of the extension table cost two septets (escape + char)
  and are never split between parts.
* Anything outside GSM-7 (Arabic, emoji) turns the whole message into UCS-2: 70 UTF-16
  code units alone, 67 per part. A character outside the BMP is a surrogate pair (two
  units) that is never split between parts.

Usage: ``analyse("نعم").segments == 1``; ``split(text)`` gives the parts' texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Encoding = Literal["gsm7", "ucs2"]

# GSM 03.38 basic character set, in table order, without the escape (0x1B): a literal ESC
# in a text cannot be sent as itself, so it forces UCS-2.
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each costs the escape septet plus itself.
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67


@dataclass(frozen=True, slots=True)
class SmsEncoding:
    encoding: Encoding
    units: int  # septets for gsm7, UTF-16 code units for ucs2
    segments: int


def _is_gsm7(text: str) -> bool:
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text)


def _gsm7_cost(ch: str) -> int:
    return 2 if ch in _GSM7_EXTENSION else 1


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _units(text: str, gsm7: bool) -> int:
    if gsm7:
        return len(text) + sum(1 for ch in text if ch in _GSM7_EXTENSION)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _cut(text: str, gsm7: bool) -> list[str]:
    """Greedy packing into parts; a character whose cost overflows a part starts the next."""
    cost = _gsm7_cost if gsm7 else _ucs2_cost
    limit = GSM7_PART if gsm7 else UCS2_PART
    parts: list[str] = []
    start = 0
    used = 0
    for i, ch in enumerate(text):
        c = cost(ch)
        if used + c > limit:
            parts.append(text[start:i])
            start = i
            used = 0
        used += c
    parts.append(text[start:])
    return parts


def analyse(text: str) -> SmsEncoding:
    """The encoding, size in units and segment count a handset would use for ``text``."""
    gsm7 = _is_gsm7(text)
    units = _units(text, gsm7)
    single = GSM7_SINGLE if gsm7 else UCS2_SINGLE
    segments = 1 if units <= single else len(_cut(text, gsm7))
    return SmsEncoding(encoding="gsm7" if gsm7 else "ucs2", units=units, segments=segments)


def split(text: str) -> list[str]:
    """The texts of the segments, in order; ``"".join(split(t)) == t``. Empty text: ``[""]``."""
    gsm7 = _is_gsm7(text)
    single = GSM7_SINGLE if gsm7 else UCS2_SINGLE
    if _units(text, gsm7) <= single:
        return [text]
    return _cut(text, gsm7)
