"""Phone numbers are personal data: normalise to E.164, mask in logs, pseudonymise in exports."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from functools import lru_cache

import phonenumbers

_TO_ASCII = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_STRIP = re.compile(r"[\s\-().\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class InvalidPhone(ValueError):
    """Not a phone number we can reach (bad digits, wrong length, unknown prefix)."""


@lru_cache(maxsize=65536)
def normalize_phone(raw: str, region: str = "LY") -> str:
    """Return ``raw`` in E.164 (``+218912345678``); Arabic-Indic digits and ``00`` accepted."""
    text = _STRIP.sub("", raw.translate(_TO_ASCII))
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text or len(text) > 20:
        raise InvalidPhone(f"not a phone number: {mask_phone(raw)}")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {mask_phone(raw)}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid number: {mask_phone(raw)}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """Keep the country code and the last two digits: ``+218*******78``."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    head = "+" + "".join(digits[:3]) if phone.startswith("+") else "".join(digits[:2])
    return head + "*" * (len(digits) - len(head.lstrip("+")) - 2) + "".join(digits[-2:])


#: the start of a pseudonymous citizen's "phone" (retention.py): a pseudonym, never a number
PSEUDONYMOUS = "p:"


def pseudonym(phone: str, key: str) -> str:
    """A stable keyed pseudonym: the same citizen gets the same id, nobody can reverse it.
    A pseudonymous citizen's stand-in (:func:`pseudonymous_phone`) gives the pseudonym it
    carries, so exports keep the same id after retention cut the link to the number."""
    if phone.startswith(PSEUDONYMOUS):
        token = phone[len(PSEUDONYMOUS) :].split(":", 1)[0]
        return base64.urlsafe_b64decode(token + "=").hex()
    return hmac.new(key.encode(), phone.encode(), hashlib.sha256).hexdigest()[:16]


def pseudonymous_prefix(phone: str, key: str) -> str:
    """``p:`` and the pseudonym in base64url (11 characters) and ``:``: how every stand-in of
    ``phone`` starts (an erasure finds them by it)."""
    raw = bytes.fromhex(pseudonym(phone, key))
    return f"{PSEUDONYMOUS}{base64.urlsafe_b64encode(raw).decode().rstrip('=')}:"


def pseudonymous_phone(phone: str, key: str, scope: int) -> str:
    """What stands in for ``phone`` in one inquiry (``scope``, its id in base 36) once retention
    cut the link: at most 20 characters, like a number, and never one."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    tail, n = "", scope
    while True:
        n, r = divmod(n, 36)
        tail = digits[r] + tail
        if not n:
            break
    stand_in = pseudonymous_prefix(phone, key) + tail
    if len(stand_in) > 20:
        raise ValueError(f"scope {scope} too large for a pseudonymous phone")
    return stand_in


_PHONE_IN_TEXT = re.compile(r"(?<![\w])\+?\d[\d\s-]{6,}\d")


class MaskPhonesFilter(logging.Filter):
    """Masks anything that looks like a phone number in every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
