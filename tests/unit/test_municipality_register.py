"""The starter register of Libya's municipalities: 22 districts, unique codes, unambiguous aliases."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

import callcenter

REGISTER = Path(callcenter.__file__).parent / "samples" / "municipalities.csv"
HEADER = ["code", "name_ar", "name_en", "district_code", "district_ar", "district_en", "aliases"]
ARABIC = re.compile(r"[\u0600-\u06ff]")
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: The 2007 shabiyat, by their English names as the register spells them.
DISTRICTS = {
    "Butnan", "Derna", "Jabal al Akhdar", "Marj", "Benghazi", "Al Wahat", "Kufra", "Sirte", "Murzuq",
    "Sabha", "Wadi al Hayaa", "Misrata", "Murqub", "Tripoli", "Jafara", "Zawiya", "Nuqat al Khams",
    "Jabal al Gharbi", "Nalut", "Ghat", "Jufra", "Wadi al Shatii",
}  # fmt: skip


def key(name: str) -> str:
    return " ".join(name.split()).casefold()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    raw = REGISTER.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "the register must be UTF-8 without a BOM"
    with REGISTER.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == HEADER
        return list(reader)


def test_every_row_is_complete(rows: list[dict[str, str]]) -> None:
    assert 60 <= len(rows) <= 100
    for row in rows:
        assert None not in row, f"{row['code']}: too many fields"
        for field in HEADER[:-1]:
            assert row[field] and row[field] == row[field].strip(), f"{row['code']}: {field} blank or padded"


def test_twenty_two_districts(rows: list[dict[str, str]]) -> None:
    districts = {(r["district_code"], r["district_ar"], r["district_en"]) for r in rows}
    assert len({d[0] for d in districts}) == 22
    # each district is spelt one way throughout
    assert len(districts) == 22
    assert {d[2] for d in districts} == DISTRICTS
    assert len({d[1] for d in districts}) == 22
    for code, _, _ in districts:
        assert SLUG.fullmatch(code), code


def test_codes_are_unique_slugs(rows: list[dict[str, str]]) -> None:
    codes = Counter(r["code"] for r in rows)
    assert [c for c, n in codes.items() if n > 1] == []
    for code in codes:
        assert SLUG.fullmatch(code), code


def test_names(rows: list[dict[str, str]]) -> None:
    for row in rows:
        assert ARABIC.search(row["name_ar"]), f"{row['code']}: name_ar has no Arabic"
        assert ARABIC.search(row["district_ar"]), f"{row['code']}: district_ar has no Arabic"
        for field in ("name_en", "district_en"):
            assert row[field].isascii() and re.search(r"[A-Za-z]", row[field]), f"{row['code']}: {field}"
    for field in ("name_ar", "name_en"):
        names = Counter(key(r[field]) for r in rows)
        assert [n for n, c in names.items() if c > 1] == [], field


def test_no_alias_names_two_municipalities(rows: list[dict[str, str]]) -> None:
    owner: dict[str, str] = {}
    for row in rows:
        aliases = [key(a) for a in row["aliases"].split("|")] if row["aliases"] else []
        assert "" not in aliases, f"{row['code']}: empty alias"
        # a municipality's own names count too: an alias may not be another's name
        for name in {key(row["name_ar"]), key(row["name_en"]), *aliases}:
            assert owner.setdefault(name, row["code"]) == row["code"], (
                f"{name!r} names both {owner[name]} and {row['code']}"
            )


def test_each_district_has_its_capital(rows: list[dict[str, str]]) -> None:
    by_district: dict[str, set[str]] = {}
    for row in rows:
        by_district.setdefault(row["district_code"], set()).add(row["code"])
    capitals = {
        "butnan": "tobruk", "derna": "derna", "jabal-al-akhdar": "al-bayda", "marj": "al-marj",
        "benghazi": "benghazi", "al-wahat": "ajdabiya", "kufra": "kufra", "sirte": "sirte",
        "murzuq": "murzuq", "sabha": "sabha", "wadi-al-hayaa": "ubari", "misrata": "misrata",
        "murqub": "khoms", "tripoli": "tripoli-centre", "jafara": "al-aziziya", "zawiya": "zawiya",
        "nuqat-al-khams": "zuwara", "jabal-al-gharbi": "gharyan", "nalut": "nalut", "ghat": "ghat",
        "jufra": "hun", "wadi-al-shatii": "brak",
    }  # fmt: skip
    assert set(by_district) == set(capitals)
    for district, capital in capitals.items():
        assert capital in by_district[district], district
