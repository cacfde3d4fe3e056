"""The citizen register import, on PostgreSQL (COPY path) and SQLite (executemany path)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.citizens.fields import fast_e164, slug
from callcenter.citizens.importer import BadHeader, ImportReport, import_citizens, source_size
from callcenter.db import transaction
from callcenter.models import Citizen, Municipality, utcnow
from callcenter.municipalities import load_register
from callcenter.phones import InvalidPhone, normalize_phone

HEADER = "phone,municipality,language\n"


def register(tmp_path: Path, body: str, *, name: str = "register.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode("utf-8"))
    return path


async def citizens(engine: AsyncEngine) -> dict[str, tuple[str | None, str]]:
    """phone -> (municipality code, language)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.phone, m.code, c.language FROM citizen c"
                " LEFT JOIN municipality m ON m.id = c.municipality_id"
            )
        )
        return {phone: (code, language) for phone, code, language in rows}


async def municipality_rows(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT code, name_ar, name_en FROM municipality ORDER BY code"))
        return [(code, ar, en) for code, ar, en in rows]


def assert_adds_up(report: ImportReport) -> None:
    parts = report.imported + report.updated + report.duplicates + report.rejected
    assert report.rows == parts


# --- good rows --------------------------------------------------------------------------


async def test_good_rows_are_imported_in_e164(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        HEADER + "0912345678,,ar\n"
        "+218 92-123-4567,,en\n"
        "00218941112233,,\n"
        "951234567,,\n"
        "091-555 4433,,\n"
        "+218 (91) 777-6655,,\n"  # not a fast-path shape: phonenumbers decides
        "218931234567,,\n",
    )
    report = await import_citizens(engine, path)
    assert report.rows == report.imported == 7
    assert (report.updated, report.duplicates, report.rejected, report.errors) == (0, 0, 0, [])
    assert report.seconds > 0
    assert await citizens(engine) == {
        "+218912345678": (None, "ar"),
        "+218921234567": (None, "en"),
        "+218941112233": (None, "ar"),
        "+218951234567": (None, "ar"),
        "+218915554433": (None, "ar"),
        "+218917776655": (None, "ar"),
        "+218931234567": (None, "ar"),
    }


async def test_phone_only_register(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(tmp_path, "Phone\n0912345678\n\n0921234567\n")
    report = await import_citizens(engine, path)
    assert (report.rows, report.imported) == (2, 2)
    assert await citizens(engine) == {
        "+218912345678": (None, "ar"),
        "+218921234567": (None, "ar"),
    }


async def test_default_language_can_be_english(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(tmp_path, "phone\n0912345678\n")
    await import_citizens(engine, path, default_language="en")
    assert await citizens(engine) == {"+218912345678": (None, "en")}


async def test_bom_and_crlf(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfphone,language\r\n0912345678,en\r\n0921234567,ar\r\n\r\n")
    report = await import_citizens(engine, path)
    assert (report.rows, report.imported, report.rejected) == (2, 2, 0)
    assert await citizens(engine) == {
        "+218912345678": (None, "en"),
        "+218921234567": (None, "ar"),
    }


async def test_arabic_indic_digits(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        HEADER + "٠٩١٢٣٤٥٦٧٨,,\n"  # Arabic-Indic
        "۰۹۲۱۲۳۴۵۶۷,,\n"  # Eastern Arabic-Indic (Persian)
        "+٢١٨ ٩٤ ١١١ ٢٢٣٣,,\n"
        "٠٠٢١٨٩٥١٢٣٤٥٦٧,,\n"
        "09١٣٣٣٣٣٣٣,,\n",  # mixed scripts
    )
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected) == (5, 0)
    assert set(await citizens(engine)) == {
        "+218912345678",
        "+218921234567",
        "+218941112233",
        "+218951234567",
        "+218913333333",
    }


@pytest.mark.parametrize(
    "header",
    [
        "هاتف,البلدية,اللغة",
        "الهاتف,البلدية,اللغة",
        "رقم الهاتف,البلدية,اللغة",
        " رقم  الهاتف , البلديّة ,اللغه ",
        "PHONE , Municipality,LANGUAGE",
        "phone_number,municipality,lang",
    ],
)
async def test_header_spellings(engine: AsyncEngine, tmp_path: Path, header: str) -> None:
    path = register(tmp_path, f"\ufeff{header}\r\n0912345678,طرابلس,en\r\n")
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.imported, report.municipalities_created) == (1, 1)
    assert await citizens(engine) == {"+218912345678": ("طرابلس", "en")}


async def test_semicolon_separated_and_extra_columns(engine: AsyncEngine, tmp_path: Path) -> None:
    """Some Excel locales save CSV with semicolons; unknown columns (a name) are ignored."""
    path = register(tmp_path, "name;phone;language\nعلي;0912345678;en\nمنى;0921234567;ar\n")
    report = await import_citizens(engine, path)
    assert report.imported == 2
    assert await citizens(engine) == {
        "+218912345678": (None, "en"),
        "+218921234567": (None, "ar"),
    }


async def test_stream_source_is_read_and_left_open(engine: AsyncEngine) -> None:
    body = (HEADER + "0912345678,,en\n").encode()
    stream = io.BytesIO(body)
    assert source_size(stream) == len(body)
    seen: list[tuple[int, int]] = []
    report = await import_citizens(engine, stream, progress=lambda rows, done: seen.append((rows, done)))
    assert report.imported == 1
    assert not stream.closed
    assert seen == [(1, len(body))]


# --- languages and municipalities -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "language"),
    [
        ("ar", "ar"),
        ("AR", "ar"),
        (" Arabic ", "ar"),
        ("عربي", "ar"),
        ("العربية", "ar"),
        ("en", "en"),
        ("English", "en"),
        ("ENGLISH", "en"),
        ("انجليزي", "en"),
        ("إنجليزي", "en"),
        ("الإنجليزية", "en"),
        ("", "ar"),
    ],
)
async def test_language_spellings(engine: AsyncEngine, tmp_path: Path, value: str, language: str) -> None:
    path = register(tmp_path, f"phone,language\n0912345678,{value}\n")
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected) == (1, 0)
    assert await citizens(engine) == {"+218912345678": (None, language)}


async def test_municipality_by_code_or_name_and_unknown_created_once_when_asked(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with transaction(sessions) as session:
        session.add(Municipality(code="tripoli", name_ar="طرابلس", name_en="Tripoli"))
        session.add(Municipality(code="misrata", name_ar="مصراتة", name_en="Misrata"))
    path = register(
        tmp_path,
        HEADER + "0911000001,tripoli,\n"
        "0911000002,TRIPOLI,\n"
        "0911000003,طرابلس,\n"
        "0911000004,Tripoli,\n"
        "0911000005,مصراته,\n"  # ta marbuta written as ha
        "0911000006,سوق الجمعة,\n"
        "0911000007, سوق الجمعة ,\n"
        "0911000008,Souq Al Juma,\n"
        "0911000009,,\n",
    )
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.imported, report.rejected, report.municipalities_created) == (9, 0, 2)
    assert await municipality_rows(engine) == [
        ("misrata", "مصراتة", "Misrata"),
        ("souq-al-juma", "Souq Al Juma", "Souq Al Juma"),
        ("tripoli", "طرابلس", "Tripoli"),
        ("سوق-الجمعة", "سوق الجمعة", ""),
    ]
    found = await citizens(engine)
    assert [found[f"+21891100000{i}"][0] for i in range(1, 10)] == [
        "tripoli", "tripoli", "tripoli", "tripoli", "misrata",
        "سوق-الجمعة", "سوق-الجمعة", "souq-al-juma", None,
    ]  # fmt: skip

    # A second import finds the created municipalities again: by name and by code.
    again = register(tmp_path, HEADER + "0922000001,سوق الجمعة,\n0922000002,souq-al-juma,\n")
    report = await import_citizens(engine, again)  # without the flag: they are known now
    assert (report.imported, report.municipalities_created) == (2, 0)
    assert len(await municipality_rows(engine)) == 4


def test_slug_keeps_arabic_and_bounds_length() -> None:
    assert slug("سوق الجمعة") == "سوق-الجمعة"
    assert slug(" Souq  Al_Juma! ") == "souq-al-juma"
    long_a, long_b = "ب" * 150 + "أ", "ب" * 150 + "ت"
    assert len(slug(long_a)) == 64
    assert slug(long_a) != slug(long_b)


REGISTER = (
    "code,name_ar,name_en,district_code,district_ar,district_en,aliases\n"
    "tripoli-centre,طرابلس المركز,Tripoli Centre,tripoli,طرابلس,Tripoli,Tripoli|Trablus|طرابلس\n"
    "abu-salim,أبوسليم,Abu Salim,tripoli,طرابلس,Tripoli,Abu Sleem|أبو سليم\n"
    "misrata,مصراتة,Misrata,misrata,مصراتة,Misrata,Misurata\n"
)


async def load_test_register(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as session:
        report = await load_register(session, REGISTER, actor="test")
    assert report.errors == []


async def test_municipality_found_by_alias_in_arabic_and_latin(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await load_test_register(sessions)
    cells = [
        "Tripoli", "طرابلس", "طرابلس ", "TRABLUS", "tripoli-centre", "طرابلس المركز",  # one
        "ابو سليم", "أبوسليم", "abu sleem", "Abu-Salim",  # two
        "مصراته", "misurata",  # three
    ]  # fmt: skip
    path = register(tmp_path, HEADER + "".join(f"09110000{i:02d},{cell},\n" for i, cell in enumerate(cells)))
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected, report.municipalities_created) == (12, 0, 0)
    found = await citizens(engine)
    assert [found[f"+2189110000{i:02d}"][0] for i in range(12)] == (
        ["tripoli-centre"] * 6 + ["abu-salim"] * 4 + ["misrata"] * 2
    )
    assert len(await municipality_rows(engine)) == 3


async def test_unknown_municipality_is_reported_on_its_row_and_not_created(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await load_test_register(sessions)
    path = register(
        tmp_path,
        HEADER + "0911000001,Tripoli,\n"
        "0911000002,أطلانتس,\n"  # line 3: unknown
        "0911000003,Atlantis,en\n"  # line 4: unknown
        "0911000004,0921234567,\n"  # line 5: a phone number typed in the wrong column
        "0911000005,أطلانتس,\n",  # line 6: the same unknown name again
        name="unknown.csv",
    )
    report = await import_citizens(engine, path, batch_size=2)
    assert (report.rows, report.imported, report.rejected, report.municipalities_created) == (5, 1, 4, 0)
    assert_adds_up(report)
    assert [e.line for e in report.errors] == [3, 4, 5, 6]
    assert "أطلانتس" in report.errors[0].reason and "unknown municipality" in report.errors[0].reason
    assert "Atlantis" in report.errors[1].reason and "--create-municipalities" in report.errors[1].reason
    assert "921234567" not in report.errors[2].reason + report.errors[2].value_masked
    assert set(await citizens(engine)) == {"+218911000001"}
    assert len(await municipality_rows(engine)) == 3


async def test_unknown_municipality_is_created_when_asked(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await load_test_register(sessions)
    path = register(tmp_path, HEADER + "0911000001,Trablus,\n0911000002,Atlantis,\n0911000003,atlantis ,\n")
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.imported, report.rejected, report.municipalities_created) == (3, 0, 1)
    found = await citizens(engine)
    assert [found[f"+21891100000{i}"][0] for i in (1, 2, 3)] == ["tripoli-centre", "atlantis", "atlantis"]


# --- duplicates and re-imports ----------------------------------------------------------


async def test_duplicates_in_the_file_are_merged_last_wins(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        HEADER + "0912345678,طرابلس,ar\n"
        "+218912345678,بنغازي,en\n"  # the same number: the last row wins
        "0921234567,طرابلس,en\n"
        "٠٩٢١٢٣٤٥٦٧,,\n",  # empty cells keep the earlier row's values
    )
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.rows, report.imported, report.duplicates, report.updated) == (4, 2, 2, 0)
    assert_adds_up(report)
    assert await citizens(engine) == {
        "+218912345678": ("بنغازي", "en"),
        "+218921234567": ("طرابلس", "en"),
    }


async def test_reimport_updates_existing_citizens_and_keeps_opt_outs(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    opted_out = utcnow()
    async with transaction(sessions) as session:
        session.add(Citizen(phone="+218912345678", language="ar", opted_out_at=opted_out))
        session.add(Citizen(phone="+218921234567", language="en"))
    path = register(
        tmp_path,
        HEADER + "0912345678,طرابلس,en\n"  # changed
        "0921234567,,\n"  # unchanged: empty cells erase nothing
        "0941112233,,en\n",  # new
    )
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.imported, report.updated, report.duplicates) == (1, 2, 0)
    assert await citizens(engine) == {
        "+218912345678": ("طرابلس", "en"),
        "+218921234567": (None, "en"),
        "+218941112233": (None, "en"),
    }
    async with sessions() as session:
        rows = await session.execute(text("SELECT opted_out_at FROM citizen WHERE phone = '+218912345678'"))
        assert rows.scalar_one() is not None

    # The same file again: every number exists now.
    report = await import_citizens(engine, path)
    assert (report.imported, report.updated, report.duplicates) == (0, 3, 0)


async def test_batches_count_exactly(engine: AsyncEngine, tmp_path: Path) -> None:
    """More rows than batch_size: duplicates across batches are still duplicates, and
    numbers already in the database are still updates."""
    before = register(tmp_path, "phone\n0910000000\n0910000001\n", name="before.csv")
    await import_citizens(engine, before)
    lines = [f"09100000{i:02d},,{'en' if i % 2 else 'ar'}" for i in range(23)]
    lines += ["0910000005,,en", "bad", "0910000001,,en", "0910000022,,ar", "0910000030,,"]
    body = HEADER + "\n".join(lines) + "\n"
    path = register(tmp_path, body)
    progress: list[tuple[int, int]] = []
    report = await import_citizens(
        engine, path, batch_size=4, progress=lambda rows, done: progress.append((rows, done))
    )
    assert report.rows == 28
    assert report.imported == 22  # 0..22 and 30, minus the two that existed
    assert report.updated == 2
    assert report.duplicates == 3
    assert report.rejected == 1
    assert report.errors[0].line == 26
    assert_adds_up(report)
    assert len(progress) == 7
    assert [rows for rows, _ in progress] == [4, 8, 12, 16, 20, 24, 28]
    assert progress[-1][1] == len(body.encode())
    found = await citizens(engine)
    assert len(found) == 24
    assert found["+218910000005"] == (None, "en")
    assert found["+218910000022"] == (None, "ar")


# --- bad rows ---------------------------------------------------------------------------


async def test_bad_rows_are_reported_and_good_rows_kept(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(
        tmp_path,
        HEADER + "0912345678,,ar\n"  # line 2: good
        "0912,,ar\n"  # 3: too short
        "n/a,,ar\n"  # 4: not a number
        "0971234567,,ar\n"  # 5: no such prefix
        "0921234567,,fr\n"  # 6: unknown language
        "0931234567,,ar,extra\n"  # 7: a field too many
        "0941234567\n"  # 8: fields missing
        ",طرابلس,ar\n"  # 9: no phone
        '"0951234567","x""y",en\n'  # 10: good, quoted
        ",,\n"  # 11: an empty Excel row: skipped, not a row
        "0961234567,,en\n",  # 12: good
    )
    report = await import_citizens(engine, path, create_municipalities=True)
    assert (report.rows, report.imported, report.rejected) == (10, 3, 7)
    assert_adds_up(report)
    assert [(e.line, e.reason, e.value_masked) for e in report.errors] == [
        (3, "invalid phone number", "****"),
        (4, "invalid phone number", "n/a"),
        (5, "invalid phone number", "09******67"),
        (6, "unknown language", "fr"),
        (7, "expected 3 fields, found 4", ""),
        (8, "expected 3 fields, found 1", ""),
        (9, "missing phone", ""),
    ]
    assert set(await citizens(engine)) == {"+218912345678", "+218951234567", "+218961234567"}


async def test_error_list_is_capped_but_counts_are_exact(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(tmp_path, "phone\n" + "bad\n" * 5 + "0912345678\n")
    report = await import_citizens(engine, path, error_limit=2)
    assert (report.rejected, len(report.errors), report.imported) == (5, 2, 1)
    assert report.errors_truncated


async def test_invalid_utf8_costs_the_row_not_the_import(engine: AsyncEngine, tmp_path: Path) -> None:
    path = tmp_path / "cp1256.csv"
    path.write_bytes(b"phone,municipality\n0912345678," + "طرابلس".encode("cp1256") + b"\n0921234567,\n")
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected, report.municipalities_created) == (1, 1, 0)
    assert report.errors[0].line == 2
    assert "UTF-8" in report.errors[0].reason


async def test_invalid_municipality(engine: AsyncEngine, tmp_path: Path) -> None:
    path = register(tmp_path, f"phone,municipality\n0912345678,---\n0921234567,{'x' * 201}\n")
    report = await import_citizens(engine, path)
    assert (report.imported, report.rejected) == (0, 2)
    assert {e.reason for e in report.errors} == {"invalid municipality"}


# --- files that are not registers -------------------------------------------------------


async def assert_nothing_written(engine: AsyncEngine) -> None:
    assert await citizens(engine) == {}
    assert await municipality_rows(engine) == []


@pytest.mark.parametrize(
    "body",
    [
        "name,municipality,language\nعلي,طرابلس,ar\n",
        "0912345678,طرابلس,ar\n0921234567,بنغازي,en\n",  # no header at all
        "phone,phone\n0912345678,0912345678\n",
    ],
)
async def test_wrong_header_raises_before_writing(engine: AsyncEngine, tmp_path: Path, body: str) -> None:
    with pytest.raises(BadHeader) as raised:
        await import_citizens(engine, register(tmp_path, body))
    assert "0912345678" not in str(raised.value)
    assert "0912345678" not in repr(raised.value.found)
    await assert_nothing_written(engine)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"\n\n", "empty"),
        ("phone\n0912345678\n".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel"),
    ],
)
async def test_unreadable_files_raise_bad_header(
    engine: AsyncEngine, tmp_path: Path, data: bytes, words: str
) -> None:
    path = tmp_path / "register.csv"
    path.write_bytes(data)
    with pytest.raises(BadHeader, match=words):
        await import_citizens(engine, path)
    await assert_nothing_written(engine)


async def test_header_only_file_imports_nothing(engine: AsyncEngine, tmp_path: Path) -> None:
    report = await import_citizens(engine, register(tmp_path, "\ufeffرقم الهاتف\r\n"))
    assert report == ImportReport(seconds=report.seconds)
    await assert_nothing_written(engine)


# --- privacy ----------------------------------------------------------------------------


async def test_no_phone_number_in_the_logs(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="callcenter")
    path = register(
        tmp_path,
        HEADER + "0912345678,طرابلس,ar\n0921234567,,zz\n0931234,,\n0941234567,,ar,x\n",
    )
    report = await import_citizens(engine, path, batch_size=2, create_municipalities=True)
    assert report.rejected == 3
    with pytest.raises(BadHeader):
        await import_citizens(engine, register(tmp_path, "0951234567,,\n", name="x.csv"))
    assert any(r.name.startswith("callcenter.citizens") for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for digits in ("912345678", "921234567", "0931234", "941234567", "951234567"):
        assert digits not in logged
    for error in report.errors:
        assert not any(d in error.value_masked for d in ("921234567", "0931234", "941234567"))


# --- the fast path agrees with phonenumbers ----------------------------------------------

_SCRIPTS = (
    str.maketrans("", ""),
    str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
    str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"),
)


@st.composite
def libyan_looking(draw: st.DrawFn) -> str:
    """Numbers as registers type them, valid or not: prefixes, lengths, scripts, separators."""
    prefix = draw(st.sampled_from(["", "0", "+218", "00218", "218", "0218", "+2180", "+", "00"]))
    first = draw(st.sampled_from("9999912345678"))
    rest = draw(st.text("0123456789", min_size=6, max_size=10))
    text_ = prefix + first + rest
    separators = draw(st.lists(st.sampled_from([" ", "-", "  ", "\u00a0", "(", ")", "."])))
    for separator in separators:
        at = draw(st.integers(0, len(text_)))
        text_ = text_[:at] + separator + text_[at:]
    scripts = draw(st.lists(st.sampled_from(_SCRIPTS), min_size=1, max_size=len(text_) + 1))
    return "".join(c.translate(scripts[i % len(scripts)]) for i, c in enumerate(text_))


def normalized_or_none(raw: str) -> str | None:
    try:
        return normalize_phone(raw)
    except InvalidPhone:
        return None


@hsettings(max_examples=3000, deadline=None, database=None)
@given(libyan_looking())
def test_fast_path_agrees_with_phonenumbers(raw: str) -> None:
    fast = fast_e164(raw)
    if fast is not None:
        assert fast == normalized_or_none(raw)


@hsettings(max_examples=1000, deadline=None, database=None)
@given(
    prefix=st.sampled_from(["", "0", "+218", "00218"]),
    operator=st.sampled_from("123456"),
    subscriber=st.text("0123456789", min_size=7, max_size=7),
    script=st.sampled_from(_SCRIPTS),
    separator=st.sampled_from(["", " ", "-"]),
)
def test_fast_path_takes_every_common_mobile_shape(
    prefix: str, operator: str, subscriber: str, script: dict[int, int], separator: str
) -> None:
    raw = f"{prefix}9{operator}{separator}{subscriber[:3]}{separator}{subscriber[3:]}"
    raw = raw.translate(script)
    expected = f"+2189{operator}{subscriber}"
    assert normalize_phone(raw) == expected
    assert fast_e164(raw) == expected


def test_fast_path_only_for_libya() -> None:
    assert fast_e164("0912345678", "TN") is None
