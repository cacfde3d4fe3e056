"""Message catalogues for the staff web app: English message ids, Arabic translations.

Every ``.po`` file under ``i18n/ar/`` is read at start-up and merged (one file per part of
the app, so the parts can be translated apart); English needs no catalogue, the ids are
English. The language of the request in progress lives in a context variable set by the
app's middleware, so ``_()`` works the same in a template, a page handler or a form check.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from importlib.resources import files
from typing import Final, Literal

from babel.messages.pofile import read_po

Language = Literal["ar", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("ar", "en")
DIRECTION: Final[dict[str, str]] = {"ar": "rtl", "en": "ltr"}

current_language: ContextVar[Language] = ContextVar("current_language", default="ar")


@cache
def catalogue(language: str) -> dict[str, str | tuple[str, ...]]:
    """msgid -> translation (a tuple of plural forms for plural entries)."""
    out: dict[str, str | tuple[str, ...]] = {}
    root = files("callcenter.web.i18n").joinpath(language)
    if not root.is_dir():
        return out
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".po"):
            continue
        with entry.open("rb") as f:
            for message in read_po(f, locale=language):
                if not message.id or message.fuzzy:
                    continue
                key = str(message.id[0] if isinstance(message.id, (tuple, list)) else message.id)
                if isinstance(message.string, (tuple, list)):
                    if all(message.string):
                        out[key] = tuple(str(form) for form in message.string)
                elif message.string:
                    out[key] = str(message.string)
    return out


def translate(language: str, message: str) -> str:
    found = catalogue(language).get(message)
    if isinstance(found, str):
        return found
    return message


def gettext(message: str) -> str:
    return translate(current_language.get(), message)


def arabic_plural_form(n: int) -> int:
    """CLDR's six Arabic plural forms: zero, one, two, few (3–10), many (11–99), other."""
    if n == 0:
        return 0
    if n == 1:
        return 1
    if n == 2:
        return 2
    if 3 <= n % 100 <= 10:
        return 3
    if 11 <= n % 100 <= 99:
        return 4
    return 5


def ngettext(singular: str, plural: str, n: int) -> str:
    language = current_language.get()
    if language == "ar":
        found = catalogue("ar").get(singular)
        if isinstance(found, tuple) and len(found) == 6:
            return found[arabic_plural_form(n)]
    return singular if n == 1 else plural


_ = gettext
