"""Reading a municipalities register file: the bytes to text, the text to rows, and what is
wrong with the rows on their own and against each other (no database here).

The header is ``code,name_ar,name_en,district_code,district_ar,district_en,aliases``:
``code`` and ``name_ar`` are required, the others optional, in any order; aliases are
separated by ``|``. Line numbers count the header as line 1.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Final

from callcenter.citizens.fields import fold
from callcenter.messages import N_
from callcenter.municipalities.common import (
    ALIAS_MAX,
    ALIASES_PER_MUNICIPALITY,
    CODE,
    CODE_MAX,
    NAME_MAX,
    Problem,
    RegisterError,
    clean,
)

COLUMNS: Final = ("code", "name_ar", "name_en", "district_code", "district_ar", "district_en", "aliases")
REQUIRED: Final = ("code", "name_ar")
MAX_ROWS: Final = 5000
_DELIMITERS = (",", ";", "\t")


@dataclass(slots=True)
class FileRow:
    line: int
    code: str
    name_ar: str
    name_en: str
    district_code: str
    district_ar: str
    district_en: str
    aliases: list[str]


def decode_register(data: bytes) -> str:
    """The text of an uploaded register; raises ``RegisterError`` for a file that is not
    UTF-8 CSV text (a workbook, UTF-16, an image). A BOM is fine."""
    start = data[:4]
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise RegisterError([Problem(N_("The file is UTF-16 text: save it as “CSV UTF-8”."), line=1)])
    if start == b"PK\x03\x04":
        raise RegisterError([Problem(N_("The file is an Excel workbook: save it as “CSV UTF-8”."), line=1)])
    if b"\x00" in data[:65536]:
        raise RegisterError([Problem(N_("The file is not a CSV text file."), line=1)])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RegisterError(
            [Problem(N_("The file is not UTF-8 text: save it as “CSV UTF-8”."), line=line)]
        ) from exc


def parse_register(text: str) -> tuple[frozenset[str], list[FileRow], list[Problem]]:
    """The columns the header names, the rows, and what is wrong with the file's shape."""
    text = text.removeprefix("\ufeff")
    problems: list[Problem] = []
    first = text.split("\n", 1)[0]
    if not first.strip():
        return frozenset(), [], [Problem(N_("The file is empty: the first line must be the header."), line=1)]
    delimiter = max(_DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [cell.strip().casefold() for cell in next(reader)]
    except csv.Error:
        return frozenset(), [], [Problem(N_("The header cannot be read as CSV."), line=1)]
    for at, name in enumerate(header):
        if name not in COLUMNS:
            problems.append(
                Problem(
                    N_("Unknown column “%(column)s” in the header; the columns are %(expected)s."),
                    {"column": name[:40], "expected": ", ".join(COLUMNS)},
                    line=1,
                )
            )
        elif name in header[:at]:
            problems.append(Problem(N_("Column “%(column)s” appears twice."), {"column": name}, line=1))
    for name in REQUIRED:
        if name not in header:
            problems.append(Problem(N_("The header has no “%(column)s” column."), {"column": name}, line=1))
    if problems:
        return frozenset(header), [], problems
    rows: list[FileRow] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            line = reader.line_num
            if len(cells) != len(header):
                problems.append(
                    Problem(
                        N_("Expected %(expected)s fields, found %(found)s."),
                        {"expected": len(header), "found": len(cells)},
                        line=line,
                    )
                )
                continue
            if len(rows) >= MAX_ROWS:
                problems.append(
                    Problem(
                        N_("The file has more than %(max)s municipalities."), {"max": MAX_ROWS}, line=line
                    )
                )
                break
            values = dict(zip(header, cells, strict=True))
            rows.append(
                FileRow(
                    line=line,
                    code=clean(values.get("code", "")),
                    name_ar=clean(values.get("name_ar", "")),
                    name_en=clean(values.get("name_en", "")),
                    district_code=clean(values.get("district_code", "")),
                    district_ar=clean(values.get("district_ar", "")),
                    district_en=clean(values.get("district_en", "")),
                    aliases=[a for a in (clean(v) for v in values.get("aliases", "").split("|")) if a],
                )
            )
    except csv.Error as exc:
        problems.append(Problem(N_("This line cannot be read as CSV."), line=reader.line_num or 1))
        del exc
    return frozenset(header), rows, problems


def shown(value: str, limit: int = 60) -> str:
    """A value quoted back in a message, shortened."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def check_row(row: FileRow) -> list[Problem]:
    """What is wrong with one row on its own."""
    out: list[Problem] = []
    at = row.line
    if not row.code:
        out.append(Problem(N_("Missing code."), line=at))
    elif len(row.code) > CODE_MAX:
        out.append(
            Problem(
                N_("Code “%(code)s” is longer than %(max)s characters."),
                {"code": shown(row.code), "max": CODE_MAX},
                line=at,
            )
        )
    elif not CODE.fullmatch(row.code):
        out.append(
            Problem(
                N_("Code “%(code)s” must be one word: letters, digits and dashes."),
                {"code": shown(row.code)},
                line=at,
            )
        )
    if not row.name_ar:
        out.append(Problem(N_("Missing Arabic name (name_ar)."), line=at))
    for column, value in (("name_ar", row.name_ar), ("name_en", row.name_en)):
        if len(value) > NAME_MAX:
            out.append(
                Problem(
                    N_("%(column)s is longer than %(max)s characters."),
                    {"column": column, "max": NAME_MAX},
                    line=at,
                )
            )
    out += check_district(row.district_code, row.district_ar, row.district_en, line=at)
    if len(row.aliases) > ALIASES_PER_MUNICIPALITY:
        out.append(
            Problem(
                N_("More than %(max)s aliases."), {"max": ALIASES_PER_MUNICIPALITY}, line=at, field="aliases"
            )
        )
    for alias in row.aliases:
        if len(alias) > ALIAS_MAX:
            out.append(
                Problem(
                    N_("Alias “%(alias)s” is longer than %(max)s characters."),
                    {"alias": shown(alias), "max": ALIAS_MAX},
                    line=at,
                    field="aliases",
                )
            )
    return out


def check_district(code: str, name_ar: str, name_en: str, *, line: int | None = None) -> list[Problem]:
    """A district is a code and an Arabic name (and maybe a Latin one), or nothing at all."""
    if not code:
        if name_ar or name_en:
            return [Problem(N_("District names without a district code."), line=line, field="district")]
        return []
    if len(code) > CODE_MAX or not CODE.fullmatch(code):
        return [
            Problem(
                N_("District code “%(district)s” must be one word of at most %(max)s characters."),
                {"district": shown(code), "max": CODE_MAX},
                line=line,
                field="district",
            )
        ]
    if not name_ar:
        return [
            Problem(
                N_("District “%(district)s” has no Arabic name (district_ar)."),
                {"district": code},
                line=line,
                field="district",
            )
        ]
    if len(name_ar) > NAME_MAX or len(name_en) > NAME_MAX:
        return [
            Problem(
                N_("A district name is longer than %(max)s characters."),
                {"max": NAME_MAX},
                line=line,
                field="district",
            )
        ]
    return []


def check_file(rows: list[FileRow]) -> list[Problem]:
    """Rows against each other: codes, districts and names each belong to one row."""
    out: list[Problem] = []
    codes: dict[str, FileRow] = {}
    districts: dict[str, FileRow] = {}
    owners: dict[str, FileRow] = {}
    for row in rows:
        out += check_row(row)
        code_key = fold(row.code)
        if code_key:
            earlier = codes.setdefault(code_key, row)
            if earlier is not row:
                out.append(
                    Problem(
                        N_("Duplicate code “%(code)s”: line %(first)s has it already."),
                        {"code": shown(row.code), "first": earlier.line},
                        line=row.line,
                    )
                )
                continue
        district_key = fold(row.district_code)
        if district_key and row.district_ar:  # (a district without its name is reported already)
            first = districts.setdefault(district_key, row)
            if (fold(first.district_ar), fold(first.district_en)) != (
                fold(row.district_ar),
                fold(row.district_en),
            ):
                out.append(
                    Problem(
                        N_("District “%(district)s” is named differently on line %(first)s."),
                        {"district": shown(row.district_code), "first": first.line},
                        line=row.line,
                    )
                )
        for value in (row.code, row.name_ar, row.name_en, *row.aliases):
            key = fold(value)
            if not key:
                continue
            owner = owners.setdefault(key, row)
            if owner is not row:
                out.append(
                    Problem(
                        N_(
                            "“%(value)s” names two municipalities: "
                            "%(first_code)s (line %(first)s) and %(code)s."
                        ),
                        {
                            "value": shown(value),
                            "first_code": owner.code,
                            "first": owner.line,
                            "code": row.code,
                        },
                        line=row.line,
                    )
                )
    return out
