"""The values of a citizen register row, parsed without I/O: headers, phones, languages,
municipality names.

Registers come from many offices: Excel exports in Arabic or English, digits typed in
Arabic-Indic, names spelt with or without hamza. Everything here folds those variants
onto one form so the importer can match them with a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal

from phonenumbers import PhoneMetadata

from callcenter.phones import mask_phone, normalize_phone

Column = Literal["phone", "municipality", "language", "sex", "age_band", "age", "birth_year"]
Language = Literal["ar", "en"]

# Bidi marks, zero-width characters and stray BOMs come along with Arabic text from Excel.
_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_HARAKAT = "".join(chr(c) for c in range(0x064B, 0x0653)) + "\u0670\u0640"  # and tatweel
_SILENT = str.maketrans(dict.fromkeys(_INVISIBLE + _HARAKAT))
# Hamza on its seat or alone (تاجوراء / تاجورا), ta marbuta, alif maqsura, and the Persian
# yeh and kaf that some keyboards type for the Arabic ones.
_FOLD = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ؤ": "و", "ئ": "ي", "ة": "ه", "ى": "ي"}
    | {"ی": "ي", "ک": "ك", "_": " "}
    | dict.fromkeys(_INVISIBLE + _HARAKAT + "ء")
)


def fold(text: str) -> str:
    """A matching key: case, hamza forms, ta marbuta, harakat, tatweel and spacing do not count."""
    return " ".join(text.translate(_FOLD).casefold().split())


def _keys(column: Column, *names: str) -> dict[str, Column]:
    return {fold(name): column for name in names}


HEADERS: Final[dict[str, Column]] = (
    _keys(
        "phone", "phone", "phone number", "phonenumber", "telephone", "mobile", "mobile number",
        "msisdn", "هاتف", "الهاتف", "رقم الهاتف", "جوال", "الجوال", "رقم الجوال", "موبايل",
        "رقم الموبايل",
    )
    | _keys(
        "municipality", "municipality", "municipality code", "municipality name", "بلدية",
        "البلدية", "اسم البلدية", "رمز البلدية",
    )
    | _keys("language", "language", "lang", "لغة", "اللغة")
    | _keys("sex", "sex", "gender", "الجنس", "جنس", "النوع")
    | _keys("age_band", "age band", "age group", "age_band", "الفئة العمرية", "فئة العمر", "الفئة")
    | _keys("age", "age", "العمر", "عمر", "السن")
    | _keys("birth_year", "birth year", "year of birth", "birth_year", "سنة الميلاد", "سنة الولادة")
)  # fmt: skip


def _spellings(language: Language, *names: str) -> dict[str, Language]:
    return {fold(name): language for name in names}


LANGUAGES: Final[dict[str, Language]] = _spellings(
    "ar", "ar", "ara", "arabic", "عربي", "عربية", "العربية"
) | _spellings(
    "en", "en", "eng", "english", "انجليزي", "إنجليزي", "انجليزية", "الانجليزية", "الإنجليزية",
    "انكليزي", "الانكليزية",
)  # fmt: skip


def header_column(name: str) -> Column | None:
    """Which column a header cell names (``None``: a column the importer ignores)."""
    return HEADERS.get(fold(name))


def parse_language(value: str) -> Language | None:
    """``ar``/``en`` for any accepted spelling, ``None`` for anything else."""
    return LANGUAGES.get(fold(value))


MUNICIPALITY_NAME_MAX = 200
MUNICIPALITY_CODE_MAX = 64
_NOT_SLUG = re.compile(r"[\W_]+")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def slug(name: str) -> str:
    """The code given to a municipality the register names but the database lacks.

    Arabic letters are kept as written (``سوق-الجمعة``): transliteration would invent
    spellings the ministry never chose. Matching compares ``fold(code)``. Over-long names
    keep a hash suffix so two of them cannot collide.
    """
    text = _NOT_SLUG.sub("-", name.translate(_SILENT).casefold()).strip("-")
    if len(text) > MUNICIPALITY_CODE_MAX:
        digest = hashlib.sha1(fold(name).encode(), usedforsecurity=False).hexdigest()[:8]
        text = text[: MUNICIPALITY_CODE_MAX - 9].rstrip("-") + "-" + digest
    return text


def valid_municipality(value: str) -> bool:
    """A name we can store (PostgreSQL text holds no NUL; no control character belongs in a
    name), and from which a code can be made."""
    return len(value) <= MUNICIPALITY_NAME_MAX and not _CONTROL.search(value) and bool(slug(value))


def is_arabic(text: str) -> bool:
    return _ARABIC.search(text) is not None


# The fast path: the shapes almost every Libyan register uses for mobiles (09x, +2189x,
# 002189x, 9x…, in Latin or Arabic-Indic digits, with spaces or dashes) give the same E.164
# as phonenumbers, about 40 times faster. Anything else goes through normalize_phone.
# tests/integration/test_import_citizens.py proves the two agree (hypothesis).
_LY = PhoneMetadata.metadata_for_region("LY")
if _LY is None or _LY.mobile is None or _LY.national_prefix != "0":  # pragma: no cover
    raise RuntimeError("phonenumbers changed its Libyan metadata: review fast_e164")
_LY_CC = str(_LY.country_code)
_FAST_LY = re.compile(rf"(?:\+{_LY_CC}|00{_LY_CC}|0)?({_LY.mobile.national_number_pattern})", re.ASCII)
# The digit mapping of callcenter.phones, plus deletion of the two separators it also strips.
_FAST_CLEAN = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789", " -")


def fast_e164(raw: str, region: str = "LY") -> str | None:
    """E.164 for a common Libyan mobile shape, ``None`` when phonenumbers must decide."""
    if region != "LY":
        return None
    match = _FAST_LY.fullmatch(raw.translate(_FAST_CLEAN))
    return f"+{_LY_CC}{match.group(1)}" if match else None


def to_e164(raw: str, region: str = "LY") -> str:
    """``normalize_phone`` with the fast path in front; raises ``InvalidPhone``."""
    return fast_e164(raw, region) or normalize_phone(raw, region)


_DIGITS = re.compile(r"\d")


def mask_value(value: str, limit: int = 40) -> str:
    """A cell fit for an error report: anything with a phone's worth of digits is masked
    (a column may hold a number by mistake), the rest is shortened."""
    if len(_DIGITS.findall(value)) >= 5:
        return mask_phone(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"
