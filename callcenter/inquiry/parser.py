"""Read a citizen's SMS (or DTMF) reply: normalisation, opt-out keywords, answer parsing.

Pure and total: no I/O, every function accepts any ``str`` without raising, and the work is
linear in the length of the reply, so a 2,000-character SMS costs microseconds. Arabic
replies vary a lot in spelling (hamza forms, ta marbuta, harakat, three digit scripts), so
everything except free text is compared on :func:`normalize`'d text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from callcenter.inquiry.definition import Question, QuestionKind

#: Text answers keep this many characters; longer ones are cut, not refused (a citizen's
#: long complaint is still worth recording).
MAX_TEXT_CHARS = 1000
#: Other kinds refuse longer (normalised) replies as ``too_long``: such a reply is a letter,
#: not a rating, and guessing a number out of it would record noise.
MAX_ANSWER_CHARS = 1000

_ALEF, _YEH, _HEH = "\u0627", "\u064a", "\u0647"
_CHAR_MAP: dict[int, str] = {
    **dict.fromkeys(range(0x064B, 0x0660), ""),  # harakat, tanween, shadda, sukun, ...
    **dict.fromkeys(range(0x06D6, 0x06EE), ""),  # Quranic annotation marks
    0x0670: "",  # superscript alef
    0x0640: "",  # tatweel (kashida): pure stretching
    **dict.fromkeys(map(ord, "أإآٱٲٳ"), _ALEF),
    **dict.fromkeys(map(ord, "ىیئ"), _YEH),  # alef maqsura, Farsi yeh, hamza on yeh
    **dict.fromkeys(map(ord, "ةھہ"), _HEH),  # teh marbuta, Urdu heh forms
    ord("ک"): "\u0643",  # keheh -> kaf
    ord("ؤ"): "\u0648",  # hamza on waw -> waw
    0x066B: ".",  # Arabic decimal separator
    0x066C: ",",  # Arabic thousands separator (a thousands separator, like ',')
    **dict.fromkeys((0x2010, 0x2013, 0x2212), "-"),  # hyphen, en dash, minus sign
}
# Digits grouped by thousands ("1,000,000"), not followed by more digits or separators.
_GROUPED = re.compile(r"(?<![0-9.,])[0-9]{1,3}(?:,[0-9]{3})+(?![0-9,])")
# After normalize, '-' only starts a number and '.' is always followed by a digit.
_DIGITS = re.compile(r"-?\.?[0-9]+(?:\.[0-9]+)*")
_SEGMENT = re.compile(_DIGITS.pattern + r"|[^\s0-9.\-]+")
_SLASH = re.compile("[/\u2044\u2215\uff0f]")
_MAX_MARKS = 30
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # C0/C1 and lone surrogates


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """One NFKC'd, casefolded character -> itself, ASCII, '' (dropped) or ' ' (separator)."""
    mapped = _CHAR_MAP.get(ord(ch))
    if mapped is not None:
        return mapped
    if ch in "-.,":
        return ch
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category[0] in "LN":
        return ch
    if category[0] == "M":  # marks left over: variation selectors, keycap, accents
        return ""
    return " "  # punctuation, symbols, emoji, spaces, controls, zero-width and bidi marks


def _stream_safe(text: str) -> str:
    """Keep at most 30 combining marks in a row (the UAX #15 stream-safe limit): CPython's
    NFKC reorders a run of marks in quadratic time, and no real letter carries 30 marks."""
    if len(text) <= _MAX_MARKS:
        return text
    out: list[str] = []
    run = 0
    for ch in text:
        run = run + 1 if unicodedata.combining(ch) else 0
        if run <= _MAX_MARKS:
            out.append(ch)
    return "".join(out)


def _in_number(ch: str, before: str, after: str) -> bool:
    """Whether a '-', '.' or ',' between ``before`` and ``after`` belongs to a number."""
    if not "0" <= after <= "9":
        return False
    if ch == "-":
        return before == " "
    return "0" <= before <= "9" or (ch == "." and before in " -")


def normalize(text: str) -> str:
    """Fold a reply to the one spelling all matching uses (see the module docstring).

    Digits of every script become ASCII; Arabic letter variants, harakat and tatweel are
    unified away; Latin is casefolded; punctuation, symbols, emoji and invisible marks
    become single spaces. A '-' survives only right before a number at the start of a word
    (so "-5" is negative but "3-4" is two numbers); a '.' only before a digit and not
    after a letter (".5" is a number, "5." is not); thousands separators (',' or '٬') only
    inside well-formed groups, which are joined ("1,000" -> "1000"). Idempotent.
    """
    folded = unicodedata.normalize("NFKC", _stream_safe(text))
    folded = unicodedata.normalize("NFKC", folded.casefold())
    chars = [m for m in map(_fold_char, folded) if m]
    chars.append(" ")
    out = [" "]
    for i, ch in enumerate(chars[:-1]):
        if ch in "-.,":
            after = chars[i + 2] if ch == "-" and chars[i + 1] == "." else chars[i + 1]
            ch = ch if _in_number(ch, out[-1], after) else " "
        out.append(ch)
    joined = "".join(out)
    if "," in joined:
        joined = _GROUPED.sub(lambda m: m.group().replace(",", ""), joined).replace(",", " ")
    # Dropping marks can leave Hangul jamo adjacent; NFKC again keeps this idempotent.
    return " ".join(unicodedata.normalize("NFKC", joined).split())


def _table(entries: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """{meaning: natural spellings} -> {normalised spelling: meaning}."""
    return {normalize(word): meaning for meaning, words in entries.items() for word in words}


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Keywords:
    """Service words, stored normalised so they compare with :func:`normalize`'d text."""

    stop: frozenset[str]
    start: frozenset[str]
    help: frozenset[str]

    @classmethod
    def build(cls, *, stop: Iterable[str], start: Iterable[str], help: Iterable[str]) -> Keywords:
        def fold(words: Iterable[str]) -> frozenset[str]:
            return frozenset(filter(None, map(normalize, words)))

        return cls(stop=fold(stop), start=fold(start), help=fold(help))

    @classmethod
    def default(cls) -> Keywords:
        """Arabic and English words; "end"/"cancel" are left out: they are also answers."""
        return cls.build(
            stop=("STOP", "UNSUBSCRIBE", "ستوب", "توقف", "الغاء", "إلغاء", "قف", "ايقاف", "إيقاف"),
            start=("START", "JOIN", "ابدأ", "ابدا", "اشتراك"),
            help=("HELP", "INFO", "مساعدة", "مساعده"),
        )


#: A keyword may be followed by short filler ("STOP please", "توقف من فضلك") as long as the
#: whole message has at most this many words; longer messages are answers, not commands.
KEYWORD_MAX_WORDS = 3


def keyword(text: str, keywords: Keywords) -> Keyword | None:
    """The service command in a message, if it is one.

    Rule: the whole normalised message is a keyword (multi-word keywords too), or its first
    word is one and the message has at most ``KEYWORD_MAX_WORDS`` words. STOP is checked
    first, so a word configured twice opts out (an opt-out must never be missed).
    """
    words = normalize(text).split()
    if not words:
        return None
    whole = " ".join(words)
    short = len(words) <= KEYWORD_MAX_WORDS
    for command, known in (
        (Keyword.STOP, keywords.stop),
        (Keyword.START, keywords.start),
        (Keyword.HELP, keywords.help),
    ):
        if whole in known or (short and words[0] in known):
            return command
    return None


class Reason(StrEnum):
    """Why a reply is not an answer (machine codes; a ``str``, so it compares to text)."""

    EMPTY = "empty"  # nothing but spaces, punctuation or emoji
    NOT_A_NUMBER = "not_a_number"  # rating/number without a (whole, for ratings) number
    OUT_OF_RANGE = "out_of_range"  # a number outside ``Question.bounds``
    UNKNOWN_OPTION = "unknown_option"  # choice/yes-no reply that names nothing we know
    AMBIGUOUS = "ambiguous"  # two different answers in one reply
    TOO_LONG = "too_long"  # non-text reply longer than MAX_ANSWER_CHARS


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid answer: the canonical stored value and, for numeric kinds, its number."""

    value: str
    number: float | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str


_CARDINALS = _table(
    {
        "0": ("zero", "صفر"),
        "1": ("one", "واحد", "واحدة"),
        "2": ("two", "اثنان", "اثنين", "اثنتان", "اثنتين", "اتنين", "زوز"),
        "3": ("three", "ثلاثة", "ثلاث", "تلاتة", "تلات"),
        "4": ("four", "أربعة", "أربع"),
        "5": ("five", "خمسة", "خمس"),
        "6": ("six", "ستة", "ست"),
        "7": ("seven", "سبعة", "سبع"),
        "8": ("eight", "ثمانية", "ثماني", "ثمان", "تمانية"),
        "9": ("nine", "تسعة", "تسع"),
        "10": ("ten", "عشرة", "عشر"),
    }
)
_ORDINALS = (
    ("أول", "ثاني", "ثالث", "رابع", "خامس", "سادس", "سابع", "ثامن", "تاسع", "عاشر"),
    ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"),
)
#: Choice replies may also name the option's position: "الثانية", "second", "رقم ٢".
_POSITIONS = {
    **_CARDINALS,
    **_table({"1": ("أولى", "الأولى")}),
    **_table(
        {
            str(n): (ar, ar + "ة", "ال" + ar, "ال" + ar + "ة", en)
            for n, (ar, en) in enumerate(zip(*_ORDINALS, strict=True), 1)
        }
    ),
}
#: "3 out of 5", "٣ من ٥", "3/5": a number after one of these that equals the scale's top
#: is the scale, not a second answer.
_SCALE_WORDS = frozenset(map(normalize, ("of", "from", "من", "على")))

_YES, _NO, _UNSURE = "yes", "no", "unsure"
#: Matched longest phrase first, so "مش موافق" is no, "لا أعرف" unsure, "not sure" unsure.
_YES_NO_PHRASES = {
    tuple(spelling.split()): meaning
    for spelling, meaning in _table(
        {
            _YES: (
                *("yes", "yeah", "yea", "yep", "yup", "ok", "okay", "sure", "of course"),
                *("agree", "no problem", "نعم", "ايوه", "أيوه", "ايوة", "ايوا"),
                *("أيوا", "أجل", "بلى", "طبعا", "طبعاً", "بالتأكيد", "أكيد", "موافق"),
                *("موافقة", "أوافق", "تمام", "باهي", "اوكي", "لا بأس", "لا مانع"),
            ),
            _NO: (
                *("no", "nope", "nah", "not really", "disagree", "don't agree"),
                *("do not agree", "not ok", "not okay", "لا", "كلا", "لأ", "لاء"),
                *("مش موافق", "غير موافق", "لا أوافق", "ما نوافقش", "مانوافقش", "أبداً", "معارض"),
            ),
            _UNSURE: (
                *("don't know", "dont know", "do not know", "not sure", "no idea", "idk"),
                *("maybe", "لا أعرف", "لا أدري", "ما نعرفش", "مانعرفش", "مش عارف", "ربما", "يمكن"),
                *("مش متأكد", "غير متأكد"),
            ),
        }
    ).items()
}
_YES_NO_LONGEST = max(map(len, _YES_NO_PHRASES))
#: Short or overloaded words that only count as the entire reply ("أي" also means "any").
_YES_NO_ALONE = {"1": _YES, "2": _NO, "y": _YES, "n": _NO, normalize("اي"): _YES}


def _number(segment: str) -> str | None:
    """A digit segment -> canonical decimal text ("-007.50" -> "-7.5"); None if "1.2.3"."""
    whole, _, fraction = segment.lstrip("-").partition(".")
    if "." in fraction:
        return None
    fraction = fraction.rstrip("0")
    text = (whole.lstrip("0") or "0") + ("." + fraction if fraction else "")
    return "-" + text if segment.startswith("-") and text != "0" else text


def _is_digits(segment: str) -> bool:
    return segment[0] in "-." or "0" <= segment[0] <= "9"


def _numbers(segments: Iterable[str], words: Mapping[str, str]) -> tuple[set[str], bool]:
    """Distinct numbers written in digits or as ``words``, and whether a digit run was junk."""
    found: set[str] = set()
    malformed = False
    for segment in segments:
        number = _number(segment) if _is_digits(segment) else words.get(segment)
        if number is not None:
            found.add(number)
        elif _is_digits(segment):
            malformed = True
    return found, malformed


def _parse_rating(question: Question, text: str, norm: str) -> Parsed | Invalid:
    """The one whole number in the reply, ignoring a trailing "out of <top>"."""
    if _SLASH.search(text):
        norm = normalize(_SLASH.sub(" of ", text))
    segments = _SEGMENT.findall(norm)
    top = {str(question.bounds[1])}
    kept = [
        s
        for i, s in enumerate(segments)
        if not (i and segments[i - 1] in _SCALE_WORDS and _numbers([s], _CARDINALS)[0] == top)
    ]
    return _one_number(question, kept, whole=True)


def _parse_number(question: Question, text: str, norm: str) -> Parsed | Invalid:
    """The one number (integer or decimal, maybe negative) in the reply, within bounds."""
    return _one_number(question, _SEGMENT.findall(norm), whole=False)


def _one_number(question: Question, segments: list[str], *, whole: bool) -> Parsed | Invalid:
    found, malformed = _numbers(segments, _CARDINALS)
    if malformed or not found:
        return Invalid(Reason.NOT_A_NUMBER)
    if len(found) > 1:
        return Invalid(Reason.AMBIGUOUS)
    (value,) = found
    if whole and "." in value:  # ratings are whole numbers; "3.5" is not one of the choices
        return Invalid(Reason.NOT_A_NUMBER)
    low, high = question.bounds
    if not low <= Decimal(value) <= high:
        return Invalid(Reason.OUT_OF_RANGE)
    return Parsed(value, float(value))


def _parse_yes_no(question: Question, text: str, norm: str) -> Parsed | Invalid:
    """Yes/no words anywhere in the reply; both, or "don't know", is not an answer."""
    words = norm.split()
    meanings: set[str] = set()
    if len(words) == 1 and words[0] in _YES_NO_ALONE:
        meanings.add(_YES_NO_ALONE[words[0]])
    i = 0
    while i < len(words):
        for size in range(min(_YES_NO_LONGEST, len(words) - i), 0, -1):
            meaning = _YES_NO_PHRASES.get(tuple(words[i : i + size]))
            if meaning is not None:
                meanings.add(meaning)
                i += size
                break
        else:
            i += 1
    if len(meanings) > 1:
        return Invalid(Reason.AMBIGUOUS)
    if meanings == {_YES}:
        return Parsed(_YES, 1.0)
    if meanings == {_NO}:
        return Parsed(_NO, 0.0)
    return Invalid(Reason.UNKNOWN_OPTION)


def _key(word: str) -> str:
    """Word as compared with option labels: the Arabic article (and a "و" before it) is
    optional, so "ماء" and "والماء" name "الماء". Applied to both sides, so it is safe."""
    if len(word) > 5 and word.startswith("وال"):
        return word[3:]
    return word[2:] if len(word) > 4 and word.startswith("ال") else word


def _parse_choice(question: Question, text: str, norm: str) -> Parsed | Invalid:
    """An option named by its position, value, label (ar/en) or synonym; see ``_pick``."""
    words = norm.split()
    if len(words) == 1 and _DIGITS.fullmatch(words[0]):  # the position, as prompted
        return _pick(question, set(), _numbers(words, {})[0])
    keys = tuple(map(_key, words))
    numeric: set[int] = set()
    phrases: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    for index, option in enumerate(question.options):
        for name in (option.value, option.label.ar, option.label.en, *option.synonyms):
            phrase = tuple(map(_key, normalize(name).split()))
            if not phrase:
                continue
            if all(_DIGITS.fullmatch(w) for w in phrase):
                if phrase == keys:  # "1-2" as a label only matches the whole reply
                    numeric.add(index)
                continue
            phrases.setdefault(phrase[0], []).append((phrase, index))
    if numeric:
        return _pick(question, numeric, set())
    matched: set[int] = set()
    rest: list[str] = []
    i = 0
    while i < len(keys):
        hits = [(len(p), n) for p, n in phrases.get(keys[i], ()) if keys[i : i + len(p)] == p]
        if not hits:
            rest.append(words[i])
            i += 1
            continue
        longest = max(size for size, _ in hits)
        matched |= {n for size, n in hits if size == longest}
        i += longest
    positions = _numbers(_SEGMENT.findall(" ".join(rest)), _POSITIONS)[0]
    return _pick(question, matched, positions)


def _pick(question: Question, matched: set[int], positions: set[str]) -> Parsed | Invalid:
    """Named options plus one 1-based position. Two different numbers are ``ambiguous``; a
    number outside 1..n alone is ``unknown_option`` (not ``out_of_range``: for the citizen
    it is simply not one of the options) and, next to a named option, a quantity ("water
    5 times a day") that is ignored."""
    count = len(question.options)
    picks = set(matched)
    picks |= {int(p) - 1 for p in positions if p.isdigit() and len(p) < 6 and 0 < int(p) <= count}
    if len(picks) > 1 or len(positions) > 1:
        return Invalid(Reason.AMBIGUOUS)
    if not picks:
        return Invalid(Reason.UNKNOWN_OPTION)
    return Parsed(question.options[picks.pop()].value)


def _clean_text(text: str) -> str:
    """The citizen's own words: controls removed, whitespace collapsed, cut to the limit."""
    collapsed = " ".join(_CONTROL.sub(" ", text).split())
    return collapsed[:MAX_TEXT_CHARS].rstrip()


_PARSERS = {
    QuestionKind.RATING: _parse_rating,
    QuestionKind.NUMBER: _parse_number,
    QuestionKind.YES_NO: _parse_yes_no,
    QuestionKind.CHOICE: _parse_choice,
}


def parse_answer(question: Question, text: str) -> Parsed | Invalid:
    """Turn a reply into the answer to ``question``, or say why it is not one.

    Stored values: choice -> the option's value; rating/number -> canonical decimal text
    ("7", "-2.5", "1000"); yes_no -> "yes"/"no" (number 1.0/0.0); text -> the reply itself,
    not normalised, whitespace collapsed and cut to ``MAX_TEXT_CHARS``.
    """
    norm = normalize(text)
    if not norm:
        return Invalid(Reason.EMPTY)
    if question.kind is QuestionKind.TEXT:
        return Parsed(_clean_text(text))
    if len(norm) > MAX_ANSWER_CHARS:
        return Invalid(Reason.TOO_LONG)
    return _PARSERS[question.kind](question, text, norm)
