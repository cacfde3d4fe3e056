"""References made for the phone: ``1415-4217-0393``.

The scheme. A request's reference is derived from its serial (the ``service_request`` row id),
so two requests never share one:

1. the serial (1 .. 9,999,999) is spread over seven digits by an affine bijection modulo 10^7
   (``body = (serial * 7_391_357 + 1_415_029) mod 10^7``), so consecutive requests do not get
   look-alike references and early ones are not a row of zeros. It is a bijection, not a
   secret: ``serial_of`` turns a reference back into its serial;
2. a Damm check digit is appended. Damm's quasigroup catches every single wrong digit and
   every transposition of two adjacent digits, so a mistyped reference is refused before any
   lookup;
3. the eight digits are shown after the service's number, in groups of four:
   ``1415-BBBB-BBBC``. Callers key the eight digits (the ``1415`` in front is optional).

``parse`` accepts ASCII, Arabic-Indic (٠-٩) and Extended Arabic-Indic (۰-۹) digits, with or
without spaces and dashes, and names what is wrong in ``BadReference.problem``.

Usage::

    ref = reference_for(42)          # Reference("42170393") (digits vary)
    ref.display                      # "1415-4217-0393"
    parse("١٤١٥-٤٢١٧-٠٣٩٣") == ref   # True
    spoken_groups(ref)               # [["num-4", "num-2", ...], ["num-0", ...]]
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from callcenter.arabic_numbers import VOCABULARY
from callcenter.errors import CallCenterError
from callcenter.prompts import compose_digits

PREFIX: Final = "1415"
SERIAL_DIGITS: Final = 7
DIGITS: Final = SERIAL_DIGITS + 1  # what a caller keys: the spread serial and the check digit
MAX_SERIAL: Final = 10**SERIAL_DIGITS - 1
GROUP: Final = 4

_MODULUS: Final = 10**SERIAL_DIGITS
_SPREAD: Final = 7_391_357  # odd and not a multiple of 5: invertible modulo 10^7
_OFFSET: Final = 1_415_029
_UNSPREAD: Final = pow(_SPREAD, -1, _MODULUS)

#: Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004).
_DAMM: Final = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

#: Arabic-Indic and Extended Arabic-Indic digits -> ASCII; the separators a citizen may type.
_TO_ASCII: Final = str.maketrans(
    "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹",
    "01234567890123456789",
    " -\u2010\u2011\u2012\u2013\u2014\u2212\u00a0\u200f\u200e\u061c.",
)
_TO_ARABIC_INDIC: Final = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


class Problem(StrEnum):
    """What is wrong with a keyed reference (the IVR and SMS say it and ask again)."""

    NOT_DIGITS = "not_digits"
    WRONG_LENGTH = "wrong_length"
    BAD_CHECK_DIGIT = "bad_check_digit"


class BadReference(CallCenterError):
    error_id = "bad_reference"

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message, problem=str(problem))
        self.problem = problem


def damm(digits: str) -> int:
    """Damm's check digit of ``digits`` (ASCII); ``damm(x + str(damm(x))) == 0``."""
    interim = 0
    for char in digits:
        interim = _DAMM[interim][ord(char) - 48]
    return interim


@dataclass(frozen=True, slots=True)
class Reference:
    """The eight digits callers key: the spread serial and its Damm check digit."""

    digits: str

    @property
    def display(self) -> str:
        """``1415-4217-0393``: as printed, sent by SMS and stored."""
        return "-".join((PREFIX, *self.groups))

    @property
    def groups(self) -> list[str]:
        return [self.digits[i : i + GROUP] for i in range(0, DIGITS, GROUP)]

    @property
    def serial(self) -> int:
        return serial_of(self)

    def __str__(self) -> str:
        return self.display


def reference_for(serial: int) -> Reference:
    """The reference of the request with this serial (its row id)."""
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial <= MAX_SERIAL:
        raise ValueError(f"a reference serial is 1..{MAX_SERIAL}, not {serial!r}")
    body = f"{(serial * _SPREAD + _OFFSET) % _MODULUS:0{SERIAL_DIGITS}d}"
    return Reference(body + str(damm(body)))


def serial_of(reference: Reference) -> int:
    """The serial a reference was made from (``reference_for``'s inverse)."""
    body = int(reference.digits[:SERIAL_DIGITS])
    return (body - _OFFSET) * _UNSPREAD % _MODULUS


def parse(text: str) -> Reference:
    """The reference a citizen keyed or typed, or ``BadReference`` saying what is wrong.

    ``"1415-4217-0393"``, ``"42170393"``, ``"٤٢١٧ ٠٣٩٣"`` and ``"۱۴۱۵۴۲۱۷۰۳۹۳"`` are one reference.
    """
    digits = text.strip().translate(_TO_ASCII)
    if not digits or not digits.isascii() or not digits.isdigit():
        raise BadReference(Problem.NOT_DIGITS, "a reference is made of digits")
    if len(digits) == len(PREFIX) + DIGITS and digits.startswith(PREFIX):
        digits = digits[len(PREFIX) :]
    if len(digits) != DIGITS:
        raise BadReference(
            Problem.WRONG_LENGTH, f"a reference has {DIGITS} digits after {PREFIX}, not {len(digits)}"
        )
    if damm(digits) != 0:
        raise BadReference(Problem.BAD_CHECK_DIGIT, "a digit of the reference is wrong (check digit)")
    return Reference(digits)


def arabic_indic(reference: Reference) -> str:
    """``١٤١٥-٤٢١٧-٠٣٩٣``: the reference in the digits of an Arabic SMS."""
    return reference.display.translate(_TO_ARABIC_INDIC)


def spoken_groups(reference: Reference, *, prefix: bool = False) -> list[list[str]]:
    """The prompt ids that read the reference out, digit by digit, one list per group (the IVR
    pauses between groups); with ``prefix``, the ``1415`` group first."""
    groups = [PREFIX, *reference.groups] if prefix else reference.groups
    return [compose_digits(group) for group in groups]


def spoken_arabic(reference: Reference, *, prefix: bool = False) -> list[str]:
    """The Arabic words of each group: ``["أربعة اثنان واحد سبعة", "صفر ثلاثة تسعة ثلاثة"]``."""
    return [
        " ".join(VOCABULARY[token] for token in group) for group in spoken_groups(reference, prefix=prefix)
    ]
