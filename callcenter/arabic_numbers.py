"""Arabic numbers as an announcement must say them: counted nouns, ordinals, cardinals.

Usage::

    count_phrase(3, MINUTE)               # "ثلاث دقائق"
    announcement_tokens(3, MINUTE)        # ["num-3-f", "noun-minute-pl"]
    count_phrase(11, CALLER)              # "أحد عشر متصلاً"
    ordinal(2, feminine=True)             # "الثانية"
    words(2024)                           # "ألفان وأربعة وعشرون"

Asterisk's ``SayNumber`` reads a number but cannot make it agree with what it counts, which
Arabic requires: 1 and 2 follow the noun's gender (دقيقة واحدة، دقيقتان); 3-10 take the
opposite gender and a plural noun in the genitive (ثلاث دقائق، ثلاثة متصلين); 11-99 agree
as the teens and tens do and take a singular accusative noun (إحدى عشرة دقيقة، أحد عشر
متصلاً، إحدى وعشرون دقيقة); 100, 1000 and their multiples take a singular genitive noun
(مئة دقيقة، مئتا دقيقة); and past a hundred the last part governs the noun (مئة وثلاث دقائق),
with 101 and 102 said the classical way, "ألف ليلة وليلة" (مئة دقيقة ودقيقة). Texts are in
the nominative, as a wait or a count is announced; vowel marks appear only where they are
the spelling (متصلاً، ثمانٍ، ثوانٍ).

Prompt tokens. Every function has a ``*_tokens`` twin giving prompt ids, so the IVR can play
recorded fragments; the text is exactly the fragments' texts joined by spaces. The ids follow
the prompt catalogue's rules (``[a-z0-9][a-z0-9_-]*``) and reuse its ids where the words are
the same (``num-3`` ثلاثة, ``num-and-40`` وأربعون, ``word-thousands`` آلاف). ``VOCABULARY``
maps every id to its Arabic text:

- ``num-N``: the form that counts a masculine noun, and the plain counting form (catalogue).
- ``num-N-f`` (1-19): the form that counts a feminine noun (``num-3-f`` ثلاث, ``num-11-f``
  إحدى عشرة, ``num-8-f`` ثمانٍ); ``num-8-f-construct`` ثماني before a plural noun;
  ``num-1-f-unit`` إحدى, the unit of 21, 31 ...; ``num-200-construct`` مئتا and
  ``num-2000-construct`` ألفا before a noun.
- ``num-and-*``: any ``num-*`` after "and" (و joined to the word).
- ``noun-<key>``, ``-dual``, ``-pl``, ``-acc`` (only when the accusative is spelt differently),
  ``noun-and-<key>``, ``noun-and-<key>-dual``: a counted noun's forms.
- ``ord-N`` / ``ord-N-f`` (1-19), ``ord-1-unit`` / ``ord-1-unit-f`` الحادي / الحادية,
  ``ord-20``..``ord-90`` and ``ord-and-20``.., ``ord-100``..``ord-900``, ``word-after`` بعد and
  ``ord-after-100``..: ordinals (``الحادي والعشرون``, ``الثالث بعد المئة``).
- ``word-thousand``, ``word-thousands``, ``word-thousand-acc``, ``num-1000``, ``num-2000``: the
  catalogue's thousands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

MAX_NUMBER: Final = 999_999
MAX_ORDINAL: Final = 999  # a position past 999 is announced as a number, not an ordinal

_AND: Final = "و"

# -- the number words ---------------------------------------------------------------------------

_MASCULINE: Final = (  # counts a masculine noun; also the plain counting form
    ["صفر", "واحد", "اثنان", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة", "عشرة"]
    + ["أحد عشر", "اثنا عشر"]
    + [f"{unit} عشر" for unit in ["ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة"]]
)
_FEMININE: Final = (  # counts a feminine noun
    [""]
    + ["واحدة", "اثنتان", "ثلاث", "أربع", "خمس", "ست", "سبع", "ثمانٍ", "تسع", "عشر"]
    + ["إحدى عشرة", "اثنتا عشرة"]
    + [f"{unit} عشرة" for unit in ["ثلاث", "أربع", "خمس", "ست", "سبع", "ثماني", "تسع"]]
)
_TENS: Final = dict(
    zip(
        range(20, 100, 10),
        ["عشرون", "ثلاثون", "أربعون", "خمسون", "ستون", "سبعون", "ثمانون", "تسعون"],
        strict=True,
    )
)
_HUNDREDS: Final = dict(
    zip(
        range(100, 1000, 100),
        ["مئة", "مئتان", "ثلاثمئة", "أربعمئة", "خمسمئة", "ستمئة", "سبعمئة", "ثمانمئة", "تسعمئة"],
        strict=True,
    )
)
_ORDINALS: Final = [
    *["الأول", "الثاني", "الثالث", "الرابع", "الخامس"],
    *["السادس", "السابع", "الثامن", "التاسع", "العاشر"],
]
_ORDINALS_F: Final = [
    *["الأولى", "الثانية", "الثالثة", "الرابعة", "الخامسة"],
    *["السادسة", "السابعة", "الثامنة", "التاسعة", "العاشرة"],
]
_ORDINAL_TENS: Final = {n: "ال" + word for n, word in _TENS.items()}
_ORDINAL_HUNDREDS: Final = {n: "ال" + word for n, word in _HUNDREDS.items()}


def _number_vocabulary() -> dict[str, str]:
    plain: dict[str, str] = {}
    for n, word in enumerate(_MASCULINE):
        plain[f"num-{n}"] = word
    for n, word in enumerate(_FEMININE[1:], start=1):
        plain[f"num-{n}-f"] = word
    plain["num-8-f-construct"] = "ثماني"
    plain["num-1-f-unit"] = "إحدى"
    for n, word in (*_TENS.items(), *_HUNDREDS.items()):
        plain[f"num-{n}"] = word
    plain["num-200-construct"] = "مئتا"
    plain["num-1000"] = "ألف"
    plain["num-2000"] = "ألفان"
    plain["num-2000-construct"] = "ألفا"
    joined = {"num-and-" + key.removeprefix("num-"): _AND + word for key, word in plain.items()}
    del joined["num-and-0"]
    words = {
        "word-thousand": "ألف",
        "word-thousands": "آلاف",
        "word-thousand-acc": "ألفاً",
        "word-after": "بعد",
    }
    return {**plain, **joined, **words}


def _ordinal_vocabulary() -> dict[str, str]:
    out: dict[str, str] = {}
    for n in range(1, 20):
        unit = n % 10 if n > 10 else n
        if n <= 10:
            out[f"ord-{n}"], out[f"ord-{n}-f"] = _ORDINALS[n - 1], _ORDINALS_F[n - 1]
        else:
            base = "الحادي" if unit == 1 else _ORDINALS[unit - 1]
            base_f = "الحادية" if unit == 1 else _ORDINALS_F[unit - 1]
            out[f"ord-{n}"], out[f"ord-{n}-f"] = f"{base} عشر", f"{base_f} عشرة"
    out["ord-1-unit"], out["ord-1-unit-f"] = "الحادي", "الحادية"
    for n, word in _ORDINAL_TENS.items():
        out[f"ord-{n}"], out[f"ord-and-{n}"] = word, _AND + word
    for n, word in _ORDINAL_HUNDREDS.items():
        out[f"ord-{n}"] = word
        out[f"ord-after-{n}"] = "المئتين" if n == 200 else word  # genitive after بعد
    return out


# -- nouns --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Noun:
    """A countable noun's forms. ``plural`` is the form after 3-10 (genitive plural);
    ``accusative`` only when it is spelt differently from the singular (متصلاً, not دقيقة)."""

    key: str  # the token stem: noun-<key>
    singular: str
    dual: str
    plural: str
    feminine: bool
    accusative: str | None = None
    #: Internal: "one" said by the noun alone (ألف, not ألف واحد), and catalogue ids to reuse.
    counted_alone: bool = False
    dual_construct: str | None = None
    ids: Mapping[str, str] = field(default_factory=dict, compare=False)

    def vocabulary(self) -> dict[str, str]:
        """This noun's token ids and texts."""
        forms = {
            "sing": self.singular,
            "dual": self.dual,
            "pl": self.plural,
            "and-sing": _AND + self.singular,
            "and-dual": _AND + self.dual,
        }
        if self.accusative is not None:
            forms["acc"] = self.accusative
        if self.dual_construct is not None:
            forms["dual-construct"] = self.dual_construct
        if self.counted_alone:
            forms["one"] = self.singular
        return {self.token(form): text for form, text in forms.items()}

    def token(self, form: str) -> str:
        """The prompt id of a form: sing, dual, dual-construct, pl, acc, one, and-sing, and-dual."""
        if form in self.ids:
            return self.ids[form]
        if form.startswith("and-"):
            form = form.removeprefix("and-")
            return f"noun-and-{self.key}" + ("" if form == "sing" else f"-{form}")
        return f"noun-{self.key}" + ("" if form == "sing" else f"-{form}")


MINUTE: Final = Noun("minute", "دقيقة", "دقيقتان", "دقائق", feminine=True)
SECOND: Final = Noun("second", "ثانية", "ثانيتان", "ثوانٍ", feminine=True)
HOUR: Final = Noun("hour", "ساعة", "ساعتان", "ساعات", feminine=True)
CALLER: Final = Noun("caller", "متصل", "متصلان", "متصلين", feminine=False, accusative="متصلاً")
NOUNS: Final = (MINUTE, SECOND, HOUR, CALLER)

# Thousands are counted like a masculine noun (ثلاثة آلاف، أحد عشر ألفاً), with catalogue ids.
_THOUSAND: Final = Noun(
    "thousand",
    "ألف",
    "ألفان",
    "آلاف",
    feminine=False,
    accusative="ألفاً",
    counted_alone=True,
    dual_construct="ألفا",
    ids={
        "one": "num-1000",
        "sing": "word-thousand",
        "dual": "num-2000",
        "dual-construct": "num-2000-construct",
        "pl": "word-thousands",
        "acc": "word-thousand-acc",
        "and-sing": "num-and-1000",
        "and-dual": "num-and-2000",
    },
)

VOCABULARY: Final[Mapping[str, str]] = {
    **_number_vocabulary(),
    **_ordinal_vocabulary(),
    **{key: text for noun in NOUNS for key, text in noun.vocabulary().items()},
}


# -- public API ---------------------------------------------------------------------------------


def words(n: int, *, feminine: bool = False) -> str:
    """``n`` (0..999,999) in words: the form that counts a noun of that gender; masculine is
    also the plain counting form (ثلاثة، أحد عشر), feminine gives ثلاث، إحدى عشرة."""
    return _text(number_tokens(n, feminine=feminine))


def number_tokens(n: int, *, feminine: bool = False) -> list[str]:
    """The prompt ids of ``words(n, feminine=...)``."""
    _check(n, 0, MAX_NUMBER, "words")
    if n == 0:
        return ["num-0"]
    big, last = n - n % 100, n % 100
    out = _big(big, construct=False) if big else []
    if last:
        out += _plain(last, feminine=feminine, joined=bool(big))
    return out


def count_phrase(n: int, noun: Noun) -> str:
    """``n`` of ``noun`` (1..999,999) with the agreement Arabic needs: "ثلاث دقائق"."""
    return " ".join(texts(announcement_tokens(n, noun), noun))


def announcement_tokens(n: int, noun: Noun) -> list[str]:
    """The prompt ids of ``count_phrase(n, noun)``: ``(3, MINUTE)`` -> num-3-f, noun-minute-pl.

    Zero has no counted form (the IVR says "you are next", not "zero callers ahead").
    """
    _check(n, 1, MAX_NUMBER, "count_phrase")
    return _count(n, noun, construct=False)


def ordinal(n: int, *, feminine: bool = False) -> str:
    """The ordinal ``n`` (1..999) with the article, as a position: الأول، الحادية عشرة،
    الحادي والعشرون، الثالث بعد المئة."""
    return _text(ordinal_tokens(n, feminine=feminine))


def ordinal_tokens(n: int, *, feminine: bool = False) -> list[str]:
    """The prompt ids of ``ordinal(n, feminine=...)``."""
    _check(n, 1, MAX_ORDINAL, "ordinal")
    f = "-f" if feminine else ""
    hundreds, rest = n - n % 100, n % 100
    if hundreds:
        if not rest:
            return [f"ord-{hundreds}"]
        # the unit 1 of a compound is الحادي, as in الحادي عشر: الحادي بعد المئة
        first = [f"ord-1-unit{f}"] if rest == 1 else ordinal_tokens(rest, feminine=feminine)
        return [*first, "word-after", f"ord-after-{hundreds}"]
    if n < 20:
        return [f"ord-{n}{f}"]
    unit, tens = n % 10, n - n % 10
    if not unit:
        return [f"ord-{tens}"]
    return [f"ord-1-unit{f}" if unit == 1 else f"ord-{unit}{f}", f"ord-and-{tens}"]


def texts(tokens: list[str], noun: Noun | None = None) -> list[str]:
    """The Arabic text of each token (a custom ``noun``'s own tokens included)."""
    extra = noun.vocabulary() if noun is not None else {}
    return [extra.get(token) or VOCABULARY[token] for token in tokens]


# -- the grammar --------------------------------------------------------------------------------


def _check(n: int, low: int, high: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
        raise ValueError(f"{what} takes an int in {low}..{high}, not {n!r}")


def _text(tokens: list[str]) -> str:
    return " ".join(VOCABULARY[token] for token in tokens)


def _joined(token: str) -> str:
    """A number token after "and"."""
    return "num-and-" + token.removeprefix("num-")


def _count(n: int, noun: Noun, *, construct: bool) -> list[str]:
    """``n`` (1..999,999) of ``noun``; ``construct`` when the noun itself is followed by
    another noun (the thousands of "أحد عشر ألف دقيقة")."""
    big, last = n - n % 100, n % 100
    if not big:
        return _small(n, noun, construct=construct, joined=False)
    if not last:  # مئة دقيقة، مئتا دقيقة، ثلاثة آلاف دقيقة
        return [*_big(big, construct=True), noun.token("sing")]
    if last <= 2:  # ألف ليلة وليلة: مئة دقيقة ودقيقة، مئة دقيقة ودقيقتان
        return [
            *_big(big, construct=True),
            noun.token("sing"),
            noun.token("and-sing" if last == 1 else "and-dual"),
        ]
    return [*_big(big, construct=False), *_small(last, noun, construct=construct, joined=True)]


def _big(big: int, *, construct: bool) -> list[str]:
    """Thousands and hundreds (``big`` a multiple of 100), in construct with what follows
    when ``construct`` (مئتا، ألفا، أحد عشر ألف)."""
    thousands, hundreds = divmod(big // 100, 10)
    out: list[str] = []
    if thousands:
        out += _count(thousands, _THOUSAND, construct=construct and not hundreds)
    if hundreds:
        token = f"num-{hundreds * 100}" + ("-construct" if construct and hundreds == 2 else "")
        out.append(_joined(token) if thousands else token)
    return out


def _small(n: int, noun: Noun, *, construct: bool, joined: bool) -> list[str]:
    """1..99 of ``noun``. ``joined``: after hundreds or thousands (only for 3..99)."""
    if n == 1:
        if noun.counted_alone:
            return [noun.token("one")]
        return [noun.token("sing"), "num-1-f" if noun.feminine else "num-1"]
    if n == 2:
        return [noun.token("dual-construct" if construct and noun.dual_construct else "dual")]
    if n <= 10:
        # polarity is in the tables: num-3-f (ثلاث) is the form that counts a feminine noun
        number = "num-8-f-construct" if (n == 8 and noun.feminine) else _gendered(n, noun.feminine)
        return [_joined(number) if joined else number, noun.token("pl")]
    accusative = noun.token("acc" if noun.accusative is not None and not construct else "sing")
    return [*_plain(n, feminine=noun.feminine, joined=joined), accusative]


def _plain(n: int, *, feminine: bool, joined: bool) -> list[str]:
    """1..99 as numbers only, in the form that counts a noun of that gender."""
    if n < 20:
        out = [_gendered(n, feminine)]
    elif n % 10 == 0:
        out = [f"num-{n}"]
    else:
        unit = n % 10
        out = [
            "num-1-f-unit" if (unit == 1 and feminine) else _gendered(unit, feminine),
            f"num-and-{n - unit}",
        ]
    if joined:
        out[0] = _joined(out[0])
    return out


def _gendered(n: int, feminine: bool) -> str:
    return f"num-{n}-f" if feminine else f"num-{n}"
