"""Every string the app shows goes through the catalogue, and Arabic has each of them."""

from __future__ import annotations

import re

from callcenter.web.i18n import arabic_plural_form, catalogue
from callcenter.web.i18n.extract import message_ids, missing

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def test_every_message_id_has_an_arabic_translation() -> None:
    gaps = [f"{filename}:{line}: {msgid!r}" for msgid, filename, line in missing("ar")]
    assert gaps == [], "\n".join(gaps)


def test_translations_keep_the_placeholders_of_their_message_id() -> None:
    arabic = catalogue("ar")
    wrong = []
    for msgid, _filename, _line in message_ids():
        found = arabic.get(msgid)
        wanted = set(PLACEHOLDER.findall(msgid))
        if isinstance(found, str) and set(PLACEHOLDER.findall(found)) != wanted:
            wrong.append(msgid)
        # "zero", "one" and "two" may say the number in words (لا توجد، دقيقة واحدة، دقيقتان)
        if isinstance(found, tuple) and any(
            set(PLACEHOLDER.findall(form)) != wanted for k, form in enumerate(found) if k not in (0, 1, 2)
        ):
            wrong.append(msgid)
    assert wrong == []


def test_arabic_plural_forms_follow_cldr() -> None:
    assert [arabic_plural_form(n) for n in (0, 1, 2, 3, 10, 11, 99, 100, 102, 103, 111)] == [
        0, 1, 2, 3, 3, 4, 4, 5, 5, 3, 4,
    ]  # fmt: skip
