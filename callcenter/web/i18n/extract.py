"""The message ids the app uses: extracted with Babel from the templates and the Python code
(``_``, ``gettext``, ``ngettext``, ``N_``), for the catalogue test and for translators.

``python -m callcenter.web.i18n.extract`` prints the ids missing from the Arabic catalogue.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.extract import extract_from_dir

from callcenter.web.i18n import catalogue

PACKAGE = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [
    ("**/templates/**.html", "jinja2"),
    ("**.py", "python"),
]
#: Values shown through ``_(value)`` at run time rather than as literals in the code.
DYNAMIC: tuple[str, ...] = ()


def message_ids() -> Iterator[tuple[str, str, int]]:
    """(msgid, file, line) for every translatable string under callcenter/."""
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(PACKAGE), METHODS, keywords=KEYWORDS, options_map=options, comment_tags=()
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            yield str(msgid), filename, lineno
    for value in DYNAMIC:
        yield value, "callcenter/accounts/roles.py", 0


def missing(language: str = "ar") -> list[tuple[str, str, int]]:
    known = catalogue(language)
    seen: set[str] = set()
    out = []
    for msgid, filename, lineno in message_ids():
        if msgid not in known and msgid not in seen:
            seen.add(msgid)
            out.append((msgid, filename, lineno))
    return out


if __name__ == "__main__":
    gaps = missing(sys.argv[1] if len(sys.argv) > 1 else "ar")
    for msgid, filename, lineno in gaps:
        print(f"{filename}:{lineno}: {msgid!r}")
    sys.exit(1 if gaps else 0)
