"""Matching municipality names without the database: the fold, the index and its priorities,
alias cleaning, and reading a register file."""

from __future__ import annotations

import pytest

from callcenter.citizens.fields import fold
from callcenter.municipalities import Index, RegisterError, decode_register
from callcenter.municipalities.common import distinct_aliases, keys_of
from callcenter.municipalities.csvfile import check_file, parse_register


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Tripoli", "TRIPOLI"),
        ("طرابلس", "طرابلس "),
        ("طرابلس", " \u200fطرابلس\u200e"),  # bidi marks from Excel
        ("طرابلس", "طـرابـلـس"),  # tatweel
        ("طَرَابُلُس", "طرابلس"),  # harakat
        ("مصراتة", "مصراته"),  # ta marbuta
        ("أبو سليم", "ابو سليم"),
        ("إجدابيا", "اجدابيا"),
        ("آمنة", "امنه"),
        ("تاجوراء", "تاجورا"),  # a final hamza
        ("المؤسسة", "الموسسه"),  # hamza on waw
        ("بني وليد", "بنى  وليد"),  # alif maqsura, double space
        ("ی", "ي"),  # Persian yeh
        ("Souq_al_Juma", "souq al juma"),
    ],
)
def test_spellings_fold_onto_one_key(a: str, b: str) -> None:
    assert fold(a) == fold(b)


@pytest.mark.parametrize(("a", "b"), [("طرابلس", "طرابلس المركز"), ("Zawiya", "Zawia"), ("سرت", "سبها")])
def test_different_names_stay_different(a: str, b: str) -> None:
    assert fold(a) != fold(b)


def index() -> Index:
    found = Index()
    found.add(1, "tripoli-centre", "طرابلس المركز", "Tripoli Centre")
    found.add_alias(1, "Tripoli")
    found.add_alias(1, "طرابلس")
    found.add(2, "misrata", "مصراتة", "Misrata")
    found.add(3, "souq-al-juma", "Souq Al Juma", "Souq Al Juma")
    return found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Tripoli", 1),
        ("طرابلس", 1),
        ("طرابلس ", 1),
        ("TRIPOLI-CENTRE", 1),
        ("طرابلس المركز", 1),
        ("مصراته", 2),
        ("MISRATA", 2),
        ("Souq-Al-Juma!", 3),  # the code an import made from the name
        ("", None),
        ("   ", None),
        ("Atlantis", None),
    ],
)
def test_the_index_resolves_codes_names_and_aliases(name: str, expected: int | None) -> None:
    assert index().resolve(name) == expected


def test_a_code_beats_a_name_and_a_name_beats_an_alias() -> None:
    found = Index()
    found.add_alias(1, "zawiya")
    found.add(2, "z2", "Zawiya", "")
    assert found.resolve("zawiya") == 2  # a name beats an alias added before it
    found.add(3, "zawiya", "الزاوية", "")
    assert found.resolve("ZAWIYA") == 3  # and a code beats both
    found.add(4, "z4", "الزاوية", "")
    assert found.resolve("الزاويه") == 3  # between names the older municipality wins


def test_keys_and_aliases_without_repeats() -> None:
    assert keys_of("abu-salim", "أبوسليم", "Abu Salim", ["ابوسليم", "Abu  salim", ""]) == [
        "abu-salim", "ابوسليم", "abu salim",
    ]  # fmt: skip
    assert distinct_aliases(["  أبو سليم ", "ابو سليم", "Abu Salim", "", "Abusalim"], own=["Abu Salim"]) == [
        "أبو سليم", "Abusalim",
    ]  # fmt: skip


def test_a_register_file_is_read_with_any_column_order_and_separator() -> None:
    present, rows, problems = parse_register(
        "\ufeffname_ar;code;aliases\r\n طرابلس ;tripoli;Trablus| |Tarabulus\r\n"
    )
    assert problems == [] and present == {"code", "name_ar", "aliases"}
    [row] = rows
    assert (row.line, row.code, row.name_ar, row.aliases) == (
        2,
        "tripoli",
        "طرابلس",
        ["Trablus", "Tarabulus"],
    )


def test_line_numbers_count_the_header_and_quoted_line_breaks() -> None:
    _, rows, _ = parse_register('code,name_ar\n\na,"س\nص"\nb,ب\n')
    assert [(r.line, r.code) for r in rows] == [(4, "a"), (5, "b")]


def test_an_alias_claimed_by_two_rows_is_reported_on_the_second() -> None:
    _, rows, _ = parse_register("code,name_ar,aliases\na,أ,X|y\nb,ب,Y\nc,ت,a\n")
    messages = [(p.line, p.text()) for p in check_file(rows)]
    assert messages == [
        (3, "“Y” names two municipalities: a (line 2) and b."),
        (4, "“a” names two municipalities: a (line 2) and c."),
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfec\x00o\x00", "UTF-16"),
        (b"PK\x03\x04rest", "Excel workbook"),
        (b"GIF89a\x00\x01", "not a CSV text file"),
        (b"code,name_ar\nx,\xe9\n", "not UTF-8"),
    ],
)
def test_bytes_that_are_not_utf8_csv_text_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(RegisterError) as raised:
        decode_register(data)
    assert words in raised.value.problems[0].text()


def test_utf8_with_or_without_bom_is_text() -> None:
    assert decode_register("\ufeffcode,name_ar\n".encode()) == "code,name_ar\n"
    assert decode_register(b"code,name_ar\n") == "code,name_ar\n"
