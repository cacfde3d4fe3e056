"""Exports of an inquiry's answers in the formats ministries use: CSV (UTF-8 with a BOM for
Excel, or plain for pipelines), XLSX with right-to-left sheets, SPSS ``.sav`` and Stata
``.dta`` (format 118) with Arabic variable and value labels, and Parquet.

**Microdata**: one row per respondent, ordered by citizen: a keyed pseudonym (HMAC of the
phone with ``CALLCENTER_PSEUDONYM_KEY``, as ``results.export_rows`` does; never the phone),
municipality, district, language, the channel(s) answered on, the weight when weighted, and
one column per question (a coded number with value labels for choice, yes/no and rating
questions in SPSS and Stata; the stored value elsewhere). The rows are read from the
database as a stream and written in batches, so memory stays bounded: CSV streams straight to
the reader; XLSX uses openpyxl's write-only mode (a new sheet every 1,048,575 rows); Parquet
writes a row group per batch; SPSS and Stata need the whole table at once (ReadStat writes a
header with the row count first), so those two hold the columns, compactly, in a polars
frame.

**Aggregates** (the XLSX workbook's table sheets) go through the same suppression as the
pages (``read.assemble``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter.analysis import labels
from callcenter.analysis.read import (
    UNKNOWN,
    Estimates,
    Scope,
    Weighting,
    option_label,
    option_values,
)
from callcenter.errors import CallCenterError
from callcenter.inquiry.definition import Inquiry, Question, QuestionKind
from callcenter.models import Answer, Citizen, Municipality, table
from callcenter.phones import pseudonym

Format = Literal["csv", "csv-plain", "xlsx", "sav", "dta", "parquet"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "csv-plain", "xlsx", "sav", "dta", "parquet")
MEDIA: Final[dict[str, str]] = {
    "csv": "text/csv; charset=utf-8",
    "csv-plain": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSION: Final[dict[str, str]] = {
    "csv": "csv",
    "csv-plain": "csv",
    "xlsx": "xlsx",
    "sav": "sav",
    "dta": "dta",
    "parquet": "parquet",
}
#: a worksheet holds 1,048,576 rows: the header and 1,048,575 respondents
XLSX_ROWS: Final = 1_048_575
BATCH: Final = 20_000

A = table(Answer)
C = table(Citizen)
MU = table(Municipality)


class ExportError(CallCenterError):
    status_code = 422
    error_id = "export_error"


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the microdata: ``kind`` says how it is stored in typed formats."""

    name: str
    label: str
    kind: Literal["string", "float", "code"]
    question: Question | None = None
    codes: dict[str, int] = field(default_factory=dict)  # answer value -> code (kind "code")

    def value_labels(self, language: str) -> dict[int, str]:
        if self.question is None:
            return {}
        return {code: option_label(self.question, value, language) for value, code in self.codes.items()}


def _codes(question: Question) -> dict[str, int]:
    if question.kind is QuestionKind.YES_NO:
        return {"yes": 1, "no": 0}
    if question.kind is QuestionKind.RATING:
        return {v: int(v) for v in option_values(question)}
    if question.kind is QuestionKind.CHOICE:
        return {v: i for i, v in enumerate(option_values(question), start=1)}
    return {}


def layout(inquiry: Inquiry, *, weighted: bool, language: str = "ar") -> list[Column]:
    """The microdata's columns, in order."""
    english = language == "en"
    columns = [
        Column(
            "citizen",
            "Pseudonym (keyed HMAC of the phone number)" if english else "المعرّف المستعار",
            "string",
        ),
        Column("municipality", "Municipality" if english else "البلدية", "string"),
        Column("district", "District" if english else "الشعبية", "string"),
        Column("language", "Language" if english else "اللغة", "string"),
        Column("channel", "Channel" if english else "القناة", "string"),
    ]
    if weighted:
        columns.append(Column("weight", "Weight" if english else "الوزن", "float"))
    taken = [c.name for c in columns]
    for question in inquiry.questions:
        name = labels.variable_name(question.key, taken, limit=labels.DTA_NAME)
        taken.append(name)
        codes = _codes(question)
        kind: Literal["string", "float", "code"] = (
            "code" if codes else "float" if question.kind is QuestionKind.NUMBER else "string"
        )
        columns.append(Column(name, question.text.get("en" if english else "ar"), kind, question, codes))
    return columns


async def respondents(
    conn: AsyncConnection,
    inquiry: Inquiry,
    columns: Sequence[Column],
    *,
    scope: Scope,
    weighting: Weighting | None,
    key: str,
    coded: bool,
) -> AsyncIterator[list[list[Any]]]:
    """Batches of rows, one row per respondent in ``columns`` order; ``coded``: choice answers
    as their codes (SPSS, Stata), else as the stored value. (The database's rows come in
    partitions: iterating an async result row by row costs a context switch per row.)"""
    assert inquiry.id is not None
    width = len(columns)
    slots: dict[int | None, tuple[int, str, dict[str, int]]] = {
        c.question.id: (i, c.kind, c.codes) for i, c in enumerate(columns) if c.question is not None
    }
    weighted = any(c.name == "weight" for c in columns)
    if weighted and (weighting is None or not weighting.active):
        raise ExportError("weights were asked for but the weighting failed: see the results page")
    variables = weighting.variables if weighting is not None else ()
    query = (
        select(
            A.c.citizen_id,
            C.c.phone,
            func.coalesce(MU.c.code, literal(UNKNOWN)).label("municipality"),
            func.coalesce(func.nullif(MU.c.district_code, ""), literal(UNKNOWN)).label("district"),
            C.c.language,
            func.coalesce(C.c.sex, literal(UNKNOWN)).label("sex"),
            func.coalesce(C.c.age_band, literal(UNKNOWN)).label("age_band"),
            A.c.channel,
            A.c.question_id,
            A.c.value,
            A.c.number,
        )
        .select_from(A.join(C, C.c.id == A.c.citizen_id).outerjoin(MU, MU.c.id == C.c.municipality_id))
        .where(A.c.inquiry_id == inquiry.id, *scope.where())
        .order_by(A.c.citizen_id)
    )
    weights: dict[tuple[str, ...], float] = {}

    def weight_of(*profile: str) -> float:
        found = weights.get(profile)
        if found is None:
            assert weighting is not None
            attributes = dict(
                zip(("municipality", "district", "language", "sex", "age_band"), profile, strict=True)
            )
            found = weights[profile] = weighting.weight(tuple(attributes[v] for v in variables))
        return found

    citizen = None
    current: list[Any] = []
    channel: str | None = None
    batch: list[list[Any]] = []
    result = await conn.stream(query.execution_options(yield_per=BATCH))
    async for part in result.partitions():
        for (
            citizen_id,
            phone,
            municipality,
            district,
            language,
            sex,
            age_band,
            answered_on,
            question_id,
            value,
            number,
        ) in part:
            if citizen_id != citizen:
                if citizen is not None:
                    current[4] = channel
                    batch.append(current)
                citizen = citizen_id
                current = [None] * width
                current[0] = pseudonym(phone, key)
                current[1], current[2], current[3] = municipality, district, language
                if weighted:
                    current[5] = weight_of(municipality, district, language, sex, age_band)
                channel = answered_on
            elif answered_on != channel:
                channel = "mixed"
            slot = slots.get(question_id)
            if slot is None:
                continue
            at, kind, codes = slot
            if kind == "code":
                current[at] = codes.get(value) if coded else value
            elif kind == "float":
                current[at] = number
            else:
                current[at] = value
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if citizen is not None:
        current[4] = channel
        batch.append(current)
    if batch:
        yield batch


# -- CSV: streamed straight to the reader --------------------------------------------------------


async def csv_stream(
    columns: Sequence[Column],
    rows: AsyncIterator[list[list[Any]]],
    *,
    bom: bool,
    counter: list[int] | None = None,
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.name for c in columns])
    first = buffer.getvalue()
    yield (("\ufeff" if bom else "") + first).encode()
    async for batch in rows:
        buffer.seek(0)
        buffer.truncate()
        for row in batch:
            writer.writerow(["" if v is None else f"{v:.6g}" if isinstance(v, float) else v for v in row])
        if counter is not None:
            counter[0] += len(batch)
        yield buffer.getvalue().encode()


# -- files: written to a temporary file, then streamed ------------------------------------------


async def write_file(
    fmt: Format,
    path: Path,
    inquiry: Inquiry,
    columns: Sequence[Column],
    rows: AsyncIterator[list[list[Any]]],
    *,
    language: str = "ar",
    estimates: Estimates | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` to ``path`` in ``fmt``; returns the number of respondents."""
    if fmt in ("csv", "csv-plain"):
        count = [0]
        with path.open("wb") as out:
            async for chunk in csv_stream(columns, rows, bom=fmt == "csv", counter=count):
                await asyncio.to_thread(out.write, chunk)
                if progress is not None:
                    progress(count[0])
        return count[0]
    if fmt == "xlsx":
        return await _xlsx(
            path, inquiry, columns, rows, language=language, estimates=estimates, progress=progress
        )
    if fmt == "parquet":
        return await _parquet(path, columns, rows, progress=progress)
    if fmt in ("sav", "dta"):
        return await _readstat(fmt, path, inquiry, columns, rows, language=language, progress=progress)
    raise ExportError(f"no such format {fmt!r}", format=fmt)


async def _xlsx(
    path: Path,
    inquiry: Inquiry,
    columns: Sequence[Column],
    rows: AsyncIterator[list[list[Any]]],
    *,
    language: str,
    estimates: Estimates | None,
    progress: Callable[[int], None] | None,
) -> int:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    rtl = language != "en"

    def sheet(title: str) -> Any:
        ws = book.create_sheet(title[:31])
        ws.sheet_view.rightToLeft = rtl
        return ws

    if estimates is not None:
        _aggregate_sheets(sheet, estimates, language)
    part, written, in_sheet = 1, 0, XLSX_ROWS
    ws: Any = None
    async for batch in rows:
        start = 0
        while start < len(batch):
            if in_sheet >= XLSX_ROWS:
                ws = sheet("respondents" if part == 1 else f"respondents_{part}")
                ws.append([c.name for c in columns])
                part, in_sheet = part + 1, 0
            take = batch[start : start + XLSX_ROWS - in_sheet]
            await asyncio.to_thread(_append, ws, take)
            start += len(take)
            in_sheet += len(take)
            written += len(take)
        if progress is not None:
            progress(written)
    if ws is None:
        sheet("respondents").append([c.name for c in columns])
    await asyncio.to_thread(book.save, str(path))
    return written


def _append(ws: Any, rows: list[list[Any]]) -> None:
    for row in rows:
        ws.append(row)


def _aggregate_sheets(sheet: Callable[[str], Any], estimates: Estimates, language: str) -> None:
    """One sheet per question: answer, answers, share and interval, weighted and unweighted,
    hidden cells left empty (the pages' suppression)."""
    english = language == "en"
    for q in estimates.questions:
        ws = sheet(labels.variable_name(q.question.key, [], limit=31))
        ws.append([q.question.text.get("en" if english else "ar")])
        header = ["answer", "label", "answers", "share", "low", "high"]
        if estimates.weighting.active:
            header += ["weighted_share", "weighted_low", "weighted_high", "n_eff", "deff"]
        ws.append(header)
        for cell in q.overall.cells:
            u, w = cell.unweighted, cell.weighted
            line: list[Any] = [
                cell.value,
                option_label(q.question, cell.value, language),
                cell.count,
                None if u is None else u.estimate,
                None if u is None else u.low,
                None if u is None else u.high,
            ]
            if estimates.weighting.active:
                line += [
                    None if w is None else w.estimate,
                    None if w is None else w.low,
                    None if w is None else w.high,
                    q.overall.n_eff,
                    q.overall.deff,
                ]
            ws.append(line)
        ws.append(["n", None, q.overall.n])


async def _parquet(
    path: Path,
    columns: Sequence[Column],
    rows: AsyncIterator[list[list[Any]]],
    *,
    progress: Callable[[int], None] | None,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "float": pa.float64(), "code": pa.string()}
    schema = pa.schema([pa.field(c.name, types[c.kind]) for c in columns])
    written = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        async for batch in rows:
            data = [[row[i] for row in batch] for i in range(len(columns))]
            frame = pa.Table.from_arrays(
                [pa.array(d, type=schema.field(i).type) for i, d in enumerate(data)], schema=schema
            )
            await asyncio.to_thread(writer.write_table, frame)
            written += len(batch)
            if progress is not None:
                progress(written)
        if written == 0:
            writer.write_table(schema.empty_table())
    return written


async def _readstat(
    fmt: Literal["sav", "dta"],
    path: Path,
    inquiry: Inquiry,
    columns: Sequence[Column],
    rows: AsyncIterator[list[list[Any]]],
    *,
    language: str,
    progress: Callable[[int], None] | None,
) -> int:
    import polars as pl
    import pyreadstat

    schema = {
        c.name: pl.String if c.kind == "string" else pl.Float64 if c.kind == "float" else pl.Int32
        for c in columns
    }
    if fmt == "sav":  # SPSS's numbers are all doubles; value labels match the column's type
        schema = {k: pl.Float64 if v == pl.Int32 else v for k, v in schema.items()}
    frames = []
    written = 0
    async for batch in rows:
        frames.append(pl.DataFrame(batch, schema=schema, orient="row"))
        written += len(batch)
        if progress is not None:
            progress(written)
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    frames.clear()
    title = inquiry.title.get("en" if language == "en" else "ar")
    if fmt == "sav":
        variable_labels = {c.name: labels.fit(c.label, max_bytes=labels.SAV_VARIABLE_LABEL) for c in columns}
        value_labels: dict[str, dict[int | float, str]] = {
            c.name: {
                float(k): labels.fit(v, max_bytes=labels.SAV_VALUE_LABEL)
                for k, v in c.value_labels(language).items()
            }
            for c in columns
            if c.kind == "code"
        }
        await asyncio.to_thread(
            pyreadstat.write_sav,
            frame,
            str(path),
            file_label=labels.fit(title, max_bytes=64),
            column_labels=variable_labels,  # type: ignore[arg-type]
            variable_value_labels=value_labels,
            variable_measure={c.name: "nominal" for c in columns if c.kind == "code"},
        )
    else:
        variable_labels = {c.name: labels.fit(c.label, max_chars=labels.DTA_VARIABLE_LABEL) for c in columns}
        dta_labels: dict[str, dict[int | float, str]] = {
            c.name: {
                k: labels.fit(v, max_bytes=labels.DTA_VALUE_LABEL)
                for k, v in c.value_labels(language).items()
            }
            for c in columns
            if c.kind == "code"
        }
        await asyncio.to_thread(
            pyreadstat.write_dta,
            frame,
            str(path),
            file_label=labels.fit(title, max_chars=80),
            column_labels=variable_labels,  # type: ignore[arg-type]
            version=14,  # format 118: UTF-8 labels
            variable_value_labels=dta_labels,
        )
    return written


def temporary_path(suffix: str, directory: Path | None = None) -> Path:
    handle, name = tempfile.mkstemp(suffix=f".{suffix}", prefix="export-", dir=directory)
    os.close(handle)
    return Path(name)


async def file_chunks(path: Path, *, remove: bool = True, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """The file in chunks, removed afterwards (also when the reader goes away)."""
    try:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, size):
                yield chunk
    finally:
        if remove:
            await asyncio.to_thread(path.unlink, missing_ok=True)
