"""What the register's parts share: field limits, the keys a municipality answers to, a
problem report that the web app can translate, and the audit snapshot."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.citizens.fields import MUNICIPALITY_CODE_MAX, MUNICIPALITY_NAME_MAX, fold

CODE_MAX = MUNICIPALITY_CODE_MAX
NAME_MAX = MUNICIPALITY_NAME_MAX
ALIAS_MAX = NAME_MAX
ALIASES_PER_MUNICIPALITY = 100
#: A code is one word: it goes in CSV files, audiences and URLs' query strings.
CODE = re.compile(r"[^\s|,;\"'<>]+")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file row or a form field.

    ``message`` is an English message id with ``%(name)s`` placeholders (marked with ``N_``
    for the catalogue); ``params`` fill them in. The web app shows ``_(message) % params``,
    the CLI ``message % params``. ``line`` is the file's line (the header is line 1)."""

    message: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    line: int | None = None
    field: str | None = None  # for forms: the field to mark

    def text(self, translate: Any = None) -> str:
        template = translate(self.message) if translate is not None else self.message
        return str(template) % dict(self.params) if self.params else str(template)


class RegisterError(ValueError):
    """Problems that stop a change as a whole; nothing was written."""

    error_id = "register_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.text() for p in problems[:5]))
        self.problems = problems


def clean(value: str) -> str:
    """A cell or a field as stored: spacing collapsed, ends trimmed."""
    return " ".join(value.split())


def keys_of(code: str, name_ar: str, name_en: str, aliases: Iterable[str] = ()) -> list[str]:
    """The folded keys a municipality answers to, code and names first, without repeats."""
    out: list[str] = []
    for value in (code, name_ar, name_en, *aliases):
        key = fold(value)
        if key and key not in out:
            out.append(key)
    return out


def distinct_aliases(aliases: Iterable[str], *, own: Iterable[str] = ()) -> list[str]:
    """Aliases as stored: trimmed, one per key, none repeating the municipality's own code or
    names (``own``): ``أبو سليم`` and ``ابو سليم`` are one alias."""
    seen = {fold(value) for value in own} - {""}
    out: list[str] = []
    for alias in aliases:
        text = clean(alias)
        key = fold(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def snapshot(
    *,
    code: str,
    name_ar: str,
    name_en: str,
    district_code: str,
    district_ar: str,
    district_en: str,
    aliases: Iterable[str],
) -> dict[str, Any]:
    """A municipality as the audit log records it (before / after)."""
    return {
        "code": code,
        "name_ar": name_ar,
        "name_en": name_en,
        "district_code": district_code,
        "district_ar": district_ar,
        "district_en": district_en,
        "aliases": sorted(aliases),
    }
