"""Labels and names that fit the limits of SPSS and Stata files.

Pure. SPSS counts its limits in bytes of the file's encoding (UTF-8 here: an Arabic letter is
two bytes): a variable label holds 256 bytes, a value label 120 (ReadStat cuts longer ones
at that byte, which can split a letter in two). Stata 14+ counts characters: 80 for a
variable label, 32,000 bytes for a value label. :func:`fit` cuts on a character boundary and
never leaves a base letter without the marks that follow it (harakat, shadda), nor a
dangling joiner, so the cut label is still a valid, well-formed string.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

SAV_VARIABLE_LABEL: Final = 256  # bytes
SAV_VALUE_LABEL: Final = 120  # bytes
SAV_NAME: Final = 64  # bytes
DTA_VARIABLE_LABEL: Final = 80  # characters
DTA_VALUE_LABEL: Final = 32_000  # bytes
DTA_NAME: Final = 32  # characters
ELLIPSIS: Final = "…"
_JOINERS = {"\u200c", "\u200d", "\u0640"}  # ZWNJ, ZWJ, tatweel: nothing to end on
_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO", "WITH"}
_NAME = re.compile(r"[^A-Za-z0-9_]")


def _size(text: str, *, max_bytes: int | None, max_chars: int | None) -> bool:
    return (max_bytes is None or len(text.encode("utf-8")) <= max_bytes) and (
        max_chars is None or len(text) <= max_chars
    )


def fit(
    text: str, *, max_bytes: int | None = None, max_chars: int | None = None, mark: str = ELLIPSIS
) -> str:
    """``text`` if it fits, else its longest prefix that ends on a whole letter (with its
    combining marks), followed by ``mark``, that fits."""
    text = unicodedata.normalize("NFC", text.strip())
    if _size(text, max_bytes=max_bytes, max_chars=max_chars):
        return text
    end = len(text)
    while end > 0:
        end -= 1
        # never cut between a letter and its combining marks, nor after a joiner or a space
        while end > 0 and (unicodedata.combining(text[end]) or text[end - 1] in _JOINERS):
            end -= 1
        candidate = text[:end].rstrip() + mark
        if _size(candidate, max_bytes=max_bytes, max_chars=max_chars):
            return candidate
    return mark if _size(mark, max_bytes=max_bytes, max_chars=max_chars) else ""


def variable_name(key: str, taken: Iterable[str], *, limit: int) -> str:
    """A name SPSS and Stata accept for a question key: ASCII letters, digits and ``_``,
    starting with a letter, not a reserved word, unique (case-insensitively) among ``taken``."""
    name = _NAME.sub("_", key)[:limit] or "q"
    if not name[0].isalpha() or name.upper() in _RESERVED:
        name = ("q_" + name)[:limit]
    used = {t.casefold() for t in taken}
    base, n = name, 1
    while name.casefold() in used:
        n += 1
        suffix = f"_{n}"
        name = base[: limit - len(suffix)] + suffix
    return name
