"""Fuzzing the citizen register (CSV) reader: hostile rows, BOMs, encodings, quotes, NULs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.strategies import any_char, budget

HEADERS = (
    "phone", "phone,municipality,language", "هاتف,البلدية,اللغة", "رقم الهاتف;البلدية",
    "phone\tlanguage", "municipality,phone", "phone,phone", "name,email", "", '"phone",sex,age',
    "phone,age_band,birth_year", "phone,birth_year,sex",
)  # fmt: skip
CELLS = (
    "0912345678", "+218912345678", "00218912345678", "٠٩١٢٣٤٥٦٧٨", "۰۹۱-۲۳۴-۵۶۷۸", "912345678",
    "091 234 5678", "12", "not a phone", "", " ", "طرابلس", "بنغازي", "Tripoli", "ar", "en",
    "عربي", "English", "fr", "m", "f", "ذكر", "أنثى", "35", "1990", "18-24", "65+", "200",
    '"quoted, with comma"', '"unterminated', 'a""b', "\x00", "a\x00b", "\u200f0912345678",
    "\ufeff", "\r", "x" * 300, "٫", "NaN",
)  # fmt: skip
cell = st.one_of(
    st.sampled_from(CELLS), st.text(any_char.filter(lambda c: c not in "\ud800\udfff"), max_size=12)
)
row = st.builds(lambda cells, sep: sep.join(cells), st.lists(cell, max_size=5), st.sampled_from(",;\t"))
encoding = st.sampled_from(("utf-8", "utf-8-sig", "utf-16", "cp1256", "latin-1"))


def _encode(text: str, name: str) -> bytes:
    return text.encode(name, "replace")


#: what may follow the rows; the 140 kB field (over the csv module's limit) is built in the
#: test, so a failure's report stays readable
TAILS = (b"", b"\n", b"\xff\xfe", b"\x00" * 3, b"\n0912345678,\x80\x81", b"huge")
register = st.builds(
    lambda header, rows, newline, name: _encode(newline.join((header, *rows)), name),
    st.sampled_from(HEADERS),
    st.lists(row, max_size=12),
    st.sampled_from(("\n", "\r\n", "\r")),
    encoding,
)


@budget(150)
@given(st.one_of(register, st.binary(max_size=300)), st.sampled_from(TAILS))
def test_every_row_is_kept_or_rejected_with_a_reason(data: bytes, tail: bytes) -> None:
    if tail == b"huge":
        tail = b'\n"' + b"y" * 140_000 + b'"\n0912345678'
    targets.csv_register(data + tail)


@budget(25)
@given(register, st.sampled_from(TAILS[:-1]), st.booleans())
def test_a_hostile_register_imports_into_postgresql_without_failing(
    pg_url: str, data: bytes, tail: bytes, create: bool
) -> None:
    """The same files through the whole import, into PostgreSQL (which refuses NUL, among
    others): the import ends with a report, or refuses the file up front."""
    targets.full_import(pg_url, data + tail, create_municipalities=create)
