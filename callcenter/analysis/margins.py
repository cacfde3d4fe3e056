"""Population tables for weighting: the admin's CSV file read into tables, and the plan that
picks post-stratification or raking for the variables an analyst weights on.

Pure: text in, tables out; the store (``margin_store``) keeps them and the read model
(``read``) hands them to :func:`callcenter.analysis.weighting.post_stratify` or ``rake``.

**The file.** A header with one or more attribute columns and a count column, then one line
per cell::

    municipality,population          district,language,population
    tripoli,1170000                  west,ar,900000
    misrata,550000                   west,en,12000

Attribute columns are the register's: ``municipality`` (a code, an Arabic or Latin name or
an alias: matched through the register), ``district`` (a district code or name),
``language`` (``ar`` / ``en``), and the optional profile the citizen import reads, ``sex``
(``m`` / ``f``, ذكر / أنثى...) and ``age_band`` (18-29, 30-44, 45-59, 60+), read by the same
functions as the import (``citizens.profile``) so both sides agree; Arabic headers are
accepted (البلدية، الشعبية، اللغة، الجنس، الفئة العمرية، السكان). The count column is
``population`` (or ``count``, ``السكان``, ``العدد``). A file is one table: a file over one
attribute is a *margin*, a file over several is their *full cross* (a population table).
Loading a file replaces the table over the same attributes.

**The plan** for weighting variables ``V``: a stored table over exactly ``V`` (in any
order) means the full population table is known: post-stratification. Otherwise every
``v`` in ``V`` needs a margin, its own one-attribute table or, failing that, the sums of a
larger table that has ``v``: raking (with trimming). A variable with neither is reported.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from callcenter.citizens.profile import parse_age_band, parse_sex
from callcenter.messages import N_

#: the attributes a citizen carries that a margin may name (the register's columns)
VARIABLES: Final = ("municipality", "district", "language", "sex", "age_band")
#: the optional ones: a citizen without them falls in the "-" category, which no margin lists
PROFILE: Final = ("sex", "age_band")
_HEADERS: Final[dict[str, str]] = {
    "municipality": "municipality",
    "البلدية": "municipality",
    "بلدية": "municipality",
    "district": "district",
    "الشعبية": "district",
    "شعبية": "district",
    "المنطقة": "district",
    "language": "language",
    "اللغة": "language",
    "لغة": "language",
    "sex": "sex",
    "gender": "sex",
    "الجنس": "sex",
    "جنس": "sex",
    "age_band": "age_band",
    "age band": "age_band",
    "age group": "age_band",
    "الفئة العمرية": "age_band",
    "فئة العمر": "age_band",
    "population": "population",
    "count": "population",
    "السكان": "population",
    "العدد": "population",
    "عدد السكان": "population",
}
_LANGUAGES: Final[dict[str, str]] = {"ar": "ar", "عربي": "ar", "العربية": "ar", "en": "en", "english": "en"}
MAX_ROWS: Final = 20_000
MAX_BYTES: Final = 2 * 1024 * 1024
SEPARATOR: Final = "\t"
_NUMBER = re.compile(r"^[0-9٠-٩۰-۹]+(?:[.,٫][0-9٠-٩۰-۹]+)?$")
_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹٫,", "01234567890123456789..")

Cell = tuple[str, ...]
Method = Literal["post_stratification", "raking"]


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with the file; ``message`` is a message id, ``params`` its values."""

    message: str
    line: int | None = None
    params: Mapping[str, str | int] = field(default_factory=dict)

    def text(self, gettext: Callable[[str], str]) -> str:
        return gettext(self.message) % dict(self.params) if self.params else gettext(self.message)


class MarginFileError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Table:
    """Population per cell over ``variables`` (in the file's order)."""

    variables: tuple[str, ...]
    cells: Mapping[Cell, float]

    @property
    def key(self) -> str:
        return ",".join(self.variables)

    @property
    def total(self) -> float:
        return math.fsum(self.cells.values())

    def margin(self, variable: str) -> dict[str, float]:
        """The table summed to one of its variables."""
        at = self.variables.index(variable)
        out: dict[str, float] = defaultdict(float)
        for cell, value in self.cells.items():
            out[cell[at]] += value
        return dict(out)

    def reordered(self, variables: Sequence[str]) -> dict[Cell, float]:
        """The cells with their values in the order of ``variables`` (the same set)."""
        at = [self.variables.index(v) for v in variables]
        return {tuple(cell[i] for i in at): value for cell, value in self.cells.items()}

    def restricted(self, variable: str, keep: frozenset[str]) -> Table:
        """Only the cells whose ``variable`` is in ``keep`` (an analyst's municipalities)."""
        at = self.variables.index(variable)
        return Table(self.variables, {c: v for c, v in self.cells.items() if c[at] in keep})


@dataclass(frozen=True, slots=True)
class Plan:
    """How to weigh on ``variables``: post-stratify on ``table`` or rake on ``margins``
    (``sources`` names the stored table each margin came from)."""

    method: Method
    variables: tuple[str, ...]
    table: Table | None = None
    margins: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


class NoMargin(ValueError):
    """No stored table gives a margin of ``variable``."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"no population margin for {variable!r}")
        self.variable = variable


def plan(variables: Sequence[str], tables: Iterable[Table]) -> Plan:
    """Post-stratification when a table over exactly ``variables`` is stored, raking on margins
    otherwise (a one-attribute table first, else the sums of the smallest table with it)."""
    wanted = tuple(dict.fromkeys(variables))
    stored = sorted(tables, key=lambda t: (len(t.variables), t.key))
    for table in stored:
        if set(table.variables) == set(wanted) and len(table.variables) == len(wanted):
            return Plan("post_stratification", wanted, table=table, sources={v: table.key for v in wanted})
    margins: dict[str, dict[str, float]] = {}
    sources: dict[str, str] = {}
    for variable in wanted:
        found = next((t for t in stored if variable in t.variables), None)
        if found is None:
            raise NoMargin(variable)
        margins[variable] = found.margin(variable)
        sources[variable] = found.key
    return Plan("raking", wanted, margins=margins, sources=sources)


def decode(data: bytes) -> str:
    """The text of an uploaded file (UTF-8, a BOM is fine)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise MarginFileError([Problem(N_("The file is UTF-16 text: save it as “CSV UTF-8”."), 1)])
    if data[:4] == b"PK\x03\x04":
        raise MarginFileError([Problem(N_("The file is an Excel workbook: save it as “CSV UTF-8”."), 1)])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MarginFileError([Problem(N_("The file is not UTF-8 text."), line)]) from exc


def parse(
    text: str,
    *,
    municipality: Callable[[str], str | None],
    district: Callable[[str], str | None],
) -> Table:
    """One table from the file's text; ``municipality`` and ``district`` turn a name into the
    register's code (None: unknown). Raises :class:`MarginFileError` with every problem."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise MarginFileError([Problem(N_("The file is empty: the first line must be the header."), 1)])
    sample = text[:4096]
    delimiter = max((",", ";", "\t"), key=sample.split("\n", 1)[0].count)
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().casefold() for h in next(rows)]
    columns = [_HEADERS.get(h, h) for h in header]
    problems: list[Problem] = []
    unknown = [h for h, c in zip(header, columns, strict=True) if c not in (*VARIABLES, "population")]
    for name in unknown:
        problems.append(
            Problem(
                N_(
                    "The column “%(column)s” is not one the register has"
                    " (municipality, district, language, sex, age band)."
                ),
                1,
                {"column": name[:60]},
            )
        )
    if "population" not in columns:
        problems.append(Problem(N_("The file has no population column."), 1))
    variables = tuple(c for c in columns if c in VARIABLES)
    if not variables:
        problems.append(Problem(N_("The file names no attribute: add a municipality or district column."), 1))
    if len(set(columns)) != len(columns):
        problems.append(Problem(N_("A column appears twice in the header."), 1))
    if problems:
        raise MarginFileError(problems)
    at_pop = columns.index("population")
    at = [columns.index(v) for v in variables]
    cells: dict[Cell, float] = {}
    for line, row in enumerate(rows, start=2):
        if not any(value.strip() for value in row):
            continue
        if line > MAX_ROWS + 1:
            problems.append(Problem(N_("The file has more than %(rows)s lines."), line, {"rows": MAX_ROWS}))
            break
        if len(row) != len(columns):
            problems.append(Problem(N_("This line has a different number of values than the header."), line))
            continue
        cell: list[str] = []
        for variable, index in zip(variables, at, strict=True):
            raw = row[index].strip()
            value = _category(variable, raw, municipality, district)
            if value is None:
                problems.append(
                    Problem(
                        N_("“%(value)s” is not a known %(column)s."),
                        line,
                        {"value": raw[:60], "column": variable},
                    )
                )
                break
            cell.append(value)
        else:
            number = row[at_pop].strip().replace(" ", "").translate(_DIGITS)
            if not _NUMBER.match(row[at_pop].strip().replace(" ", "")) or not math.isfinite(float(number)):
                problems.append(
                    Problem(N_("“%(value)s” is not a population count."), line, {"value": row[at_pop][:30]})
                )
                continue
            key = tuple(cell)
            if key in cells:
                problems.append(Problem(N_("This cell appears twice in the file."), line))
                continue
            cells[key] = float(number)
    if not cells and not problems:
        problems.append(Problem(N_("The file has a header but no lines."), 2))
    if cells and math.fsum(cells.values()) <= 0:
        problems.append(Problem(N_("The populations add up to zero."), None))
    if problems:
        raise MarginFileError(problems)
    return Table(variables, cells)


def _category(
    variable: str,
    raw: str,
    municipality: Callable[[str], str | None],
    district: Callable[[str], str | None],
) -> str | None:
    if not raw:
        return None
    if variable == "municipality":
        return municipality(raw)
    if variable == "district":
        return district(raw)
    if variable == "sex":
        return parse_sex(raw)
    if variable == "age_band":
        return parse_age_band(raw)
    return _LANGUAGES.get(raw.casefold())


def join_cell(cell: Cell) -> str:
    return SEPARATOR.join(cell)


def split_cell(text: str) -> Cell:
    return tuple(text.split(SEPARATOR))
