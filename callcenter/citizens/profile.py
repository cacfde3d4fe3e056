"""A citizen's optional profile for weighting: sex and age band, parsed without I/O.

Registers say sex in many ways (``m``, ``Male``, ``ذكر``, ``أنثى``...) and age as a band, an
age in years or a birth year. Each is folded onto one stored form, so that a population
margin over ``sex`` or ``age_band`` (``analysis.margins``) can be matched with the citizens:

* sex: ``m`` or ``f``;
* age band: one of :data:`AGE_BANDS` (adults only: a register of people under 18 is not one
  the ministry polls, so an age under 18 is an error, not a band).

Every function returns ``None`` for a value it cannot read, so the caller reports the row.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from callcenter.citizens.fields import fold

Sex = Literal["m", "f"]

#: the bands, in order: (label, first age, last age or None for open-ended)
_BANDS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("18-29", 18, 29),
    ("30-44", 30, 44),
    ("45-59", 45, 59),
    ("60+", 60, None),
)
AGE_BANDS: Final = tuple(label for label, _, _ in _BANDS)
#: a person older than this is a typing error, not a citizen
MAX_AGE: Final = 120
ADULT: Final = 18

_MEN: Final = ("m", "male", "man", "ذكر", "ذ", "رجل", "ذكور")
_WOMEN: Final = ("f", "female", "woman", "أنثى", "انثى", "أ", "امرأة", "إناث", "اناث")
_MAN: Final[Sex] = "m"
_WOMAN: Final[Sex] = "f"
_SEXES: Final[dict[str, Sex]] = {
    **dict.fromkeys(map(fold, _MEN), _MAN),
    **dict.fromkeys(map(fold, _WOMEN), _WOMAN),
}
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# "18-29", "18 – 29", "18 to 29", "18 إلى 29" (folded: "الي"), "60+", "60 +", "+60"
_RANGE = re.compile(r"^(\d{1,3})\s*(?:-|–|—|to|الي)\s*(\d{1,3})$")
_OPEN = re.compile(r"^(?:(\d{1,3})\s*\+|\+\s*(\d{1,3}))$")
_NUMBER = re.compile(r"^\d{1,4}$")


def parse_sex(value: str) -> Sex | None:
    """``m``/``f`` for any accepted spelling (Latin or Arabic), ``None`` for anything else."""
    return _SEXES.get(fold(value))


def band_of_age(age: int) -> str | None:
    """The band an age in years falls in; ``None`` under 18 or past :data:`MAX_AGE`."""
    if age > MAX_AGE:
        return None
    for label, first, last in _BANDS:
        if first <= age and (last is None or age <= last):
            return label
    return None


def parse_age_band(value: str) -> str | None:
    """A band written as one of :data:`AGE_BANDS` (spacing, dashes, Arabic-Indic digits and a
    leading ``+`` do not count); ``None`` for any other range."""
    text = fold(value.translate(_DIGITS))
    found = _RANGE.match(text)
    if found:
        label = f"{int(found.group(1))}-{int(found.group(2))}"
    else:
        open_ = _OPEN.match(text)
        if open_ is None:
            return None
        label = f"{int(open_.group(1) or open_.group(2))}+"
    return label if label in AGE_BANDS else None


def parse_age(value: str) -> str | None:
    """The band of an age in whole years (``"34"`` -> ``"30-44"``)."""
    text = value.strip().translate(_DIGITS)
    return band_of_age(int(text)) if _NUMBER.match(text) else None


def parse_birth_year(value: str, *, this_year: int) -> str | None:
    """The band of a birth year, the age taken as ``this_year - year`` (a year's precision is
    what a band needs: the error moves at most the people born in one year across a border)."""
    text = value.strip().translate(_DIGITS)
    if not _NUMBER.match(text) or len(text) != 4:
        return None
    age = this_year - int(text)
    return band_of_age(age) if age >= 0 else None
