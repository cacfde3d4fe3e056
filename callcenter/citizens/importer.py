"""Streaming import of the citizen register (CSV) into the ``citizen`` table.

Usage::

    report = await import_citizens(engine, Path("register.csv"), progress=bar_update)

The register is the ministry's list of who may be polled: a CSV with a ``phone`` column
and optionally ``municipality`` and ``language`` (English or Arabic headers), and, for
weighting, ``sex`` and one of ``age_band``, ``age`` or ``birth_year`` (read by
``citizens.profile``: sex becomes ``m``/``f``, age one of its bands). It is read in
one pass: a worker thread parses and normalises batch *n + 1* while batch *n* is written
(the normalisation is CPU-bound Python, the upsert mostly waits on the database), so memory
stays flat except for the set of numbers already seen (about 65 MB a million), which is
what tells a duplicate in the file from a citizen already registered.

Each batch is committed on its own. The import is an upsert, so an interrupted import is
simply run again. A bad row never stops the import: it is counted, reported with its line
number and a masked value, and the good rows are kept. A file that cannot be a register
(no phone column, empty, a workbook, UTF-16) raises ``BadHeader`` before anything is written.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.citizens.fields import (
    LANGUAGES,
    Column,
    Language,
    fast_e164,
    header_column,
    is_arabic,
    mask_value,
    parse_language,
    slug,
    valid_municipality,
)
from callcenter.citizens.profile import AGE_BANDS, parse_age, parse_age_band, parse_birth_year, parse_sex
from callcenter.citizens.store import CitizenRow, Store, open_store
from callcenter.municipalities.index import Index
from callcenter.phones import InvalidPhone, mask_phone, normalize_phone

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

__all__ = ["BadHeader", "ImportReport", "RowError", "import_citizens", "source_size"]


class BadHeader(ValueError):
    """The file cannot be read as a register; nothing was written.

    ``found`` holds the header cells as read (masked: a headerless file starts with a
    phone number)."""

    error_id = "bad_header"

    def __init__(self, message: str, *, found: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.found = found or []


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # in the file, the header being line 1
    reason: str
    value_masked: str


@dataclass(slots=True)
class ImportReport:
    """``rows == imported + updated + duplicates + rejected`` (blank lines are not rows)."""

    rows: int = 0
    imported: int = 0  # new citizens
    updated: int = 0  # citizens already in the database, merged with their row
    # rows repeating an earlier row's phone: merged, the last row wins (as for a citizen
    # already registered, an empty cell keeps the earlier value)
    duplicates: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first error_limit rejections
    municipalities_created: int = 0
    seconds: float = 0.0

    @property
    def errors_truncated(self) -> bool:
        return self.rejected > len(self.errors)


Progress = Callable[[int, int], None]


def source_size(source: BinaryIO | Path) -> int | None:
    """The size in bytes, for a progress bar's total (``None`` for a pipe or an upload
    stream that cannot say)."""
    if isinstance(source, Path):
        return source.stat().st_size
    try:
        return os.fstat(source.fileno()).st_size
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        here = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(here)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return end - here


async def import_citizens(
    engine: AsyncEngine,
    source: BinaryIO | Path,
    *,
    region: str = "LY",
    batch_size: int = 20_000,
    progress: Progress | None = None,
    error_limit: int = 10_000,
    default_language: Language = "ar",
    create_municipalities: bool = False,
) -> ImportReport:
    """Import (upsert) the register in ``source`` (bytes, UTF-8, with or without BOM).

    The municipality column is matched against the register (code, names, aliases, folded);
    a row naming an unknown municipality is rejected, unless ``create_municipalities``, which
    adds it to the register instead (with ``slug(name)`` as its code).

    ``progress(rows_done, bytes_read)`` is called after each batch is committed (compare
    ``bytes_read`` with :func:`source_size`). A stream passed in is left open.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    reader = await asyncio.to_thread(
        _Reader.open, source, region=region, batch_size=batch_size, error_limit=error_limit
    )
    report = ImportReport()
    log.info("citizen import started (columns: %s)", ", ".join(reader.columns))
    try:
        async with engine.connect() as conn:
            store = await open_store(conn)
            municipalities = _Municipalities(store, create=create_municipalities)
            await municipalities.load()
            # The reader thread rejects unknown names itself, so each error has its line.
            reader.known = None if create_municipalities else municipalities.index
            batch = await asyncio.to_thread(reader.next_batch)
            while batch is not None:
                # Parse the next batch while this one is written.
                upcoming = asyncio.create_task(asyncio.to_thread(reader.next_batch))
                try:
                    await _write(batch, store, municipalities, report, default_language)
                finally:
                    # The thread must be done with the file before it is closed; if the
                    # write failed, its error is the one that matters.
                    await asyncio.wait({upcoming})
                    if not upcoming.cancelled():
                        upcoming.exception()
                if progress is not None:
                    progress(report.rows, batch.bytes_read)
                batch = upcoming.result()
            report.municipalities_created = municipalities.created
            # Only on success: after a failure the connection may be gone, and a leftover
            # staging table is empty and reused by the next import anyway.
            await store.close()
    finally:
        reader.close()
    report.errors = reader.errors
    report.seconds = time.perf_counter() - started
    log.info(
        "citizen import done: %d rows, %d new, %d updated, %d duplicates, %d rejected, "
        "%d municipalities created, %.1f s",
        report.rows, report.imported, report.updated, report.duplicates, report.rejected,
        report.municipalities_created, report.seconds,
    )  # fmt: skip
    return report


async def _write(
    batch: _Batch,
    store: Store,
    municipalities: _Municipalities,
    report: ImportReport,
    default_language: str,
) -> None:
    ids = await municipalities.resolve({row[0] for row in batch.citizens.values()})
    rows: list[CitizenRow] = [
        (phone, ids[value], language, sex, band)
        for phone, (value, language, sex, band) in batch.citizens.items()
    ]
    inserted = await store.upsert(rows, default_language=default_language) if rows else 0
    # Every phone that was not inserted existed; those an earlier batch wrote are duplicates.
    report.rows += batch.rows
    report.imported += inserted
    report.updated += max(len(rows) - inserted - batch.repeats, 0)
    report.duplicates += batch.duplicates
    report.rejected += batch.rejected
    log.debug("citizen import batch: %d rows, %d new, %d rejected", batch.rows, inserted, batch.rejected)


class _Municipalities:
    """Register cells (a code, an Arabic or a Latin name, an alias) to municipality ids.

    With ``create``, unknown names are added once, with ``slug(name)`` as the code, so a
    second import of the same register finds them again by code."""

    def __init__(self, store: Store, *, create: bool) -> None:
        self._store = store
        self._create = create
        self.index = Index()
        self._ids: dict[str | None, int | None] = {None: None}
        self.created = 0

    async def load(self) -> None:
        for id_, code, name_ar, name_en in await self._store.municipalities():
            self.index.add(id_, code, name_ar, name_en)
        for id_, alias in await self._store.municipality_aliases():
            self.index.add_alias(id_, alias)

    async def resolve(self, values: set[str | None]) -> dict[str | None, int | None]:
        for value in values - self._ids.keys():
            if value is None:  # pragma: no cover - None is always known
                continue
            id_ = self.index.resolve(value)
            if id_ is None:
                if not self._create:  # pragma: no cover - the reader rejected the row
                    raise RuntimeError("an unknown municipality got past the reader")
                code = slug(value)
                # name_ar is what the Arabic UI shows: a Latin-only name goes in both.
                name_ar, name_en = (value, "") if is_arabic(value) else (value, value)
                id_, created = await self._store.create_municipality(code, name_ar, name_en)
                self.created += created
                self.index.add(id_, code, name_ar, name_en)
            self._ids[value] = id_
        return self._ids


_Profile = tuple[str | None, Language | None, str | None, str | None]
#: the columns that say a citizen's age, one of which a register may have
_AGE_COLUMNS: tuple[Column, ...] = ("age_band", "age", "birth_year")


@dataclass(slots=True)
class _Batch:
    # phone (E.164) -> (municipality cell, language, sex, age band), each None when the row
    # did not say; the last row wins
    citizens: dict[str, _Profile] = field(default_factory=dict)
    rows: int = 0
    duplicates: int = 0
    repeats: int = 0  # phones of this batch that an earlier batch already wrote
    rejected: int = 0
    bytes_read: int = 0


class _CountingReader(io.RawIOBase):
    """Counts the bytes read, for progress, on any binary stream (an upload has no tell())."""

    def __init__(self, source: BinaryIO, *, owned: bool) -> None:
        super().__init__()
        self._source = source
        self._owned = owned
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        view[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        if self._owned and not self.closed:
            self._source.close()
        super().close()


def _mask_phone_cell(raw: str) -> str:
    """Digits are masked like a phone number; a cell without digits ("n/a") is shown."""
    text = raw.strip()
    return mask_phone(text) if any(c.isdigit() for c in text) else mask_value(text)


_DELIMITERS = (",", ";", "\t")
_CACHE_LIMIT = 10_000


class _Reader:
    """The CSV side, run in a worker thread: one batch of parsed, normalised rows at a time."""

    def __init__(
        self,
        counter: _CountingReader,
        *,
        region: str,
        batch_size: int,
        error_limit: int,
    ) -> None:
        self._counter = counter
        self._buffer = io.BufferedReader(counter, 1 << 20)
        # errors="replace": a stray non-UTF-8 byte costs one row (see _municipality_error),
        # not the whole import.
        self._text = io.TextIOWrapper(self._buffer, encoding="utf-8-sig", errors="replace", newline="")
        self._region = region
        self._batch_size = batch_size
        self._error_limit = error_limit
        self._seen: set[int] = set()  # every phone written so far, as an int (compact)
        self._languages: dict[str, Language] = dict(LANGUAGES)
        self._municipality_errors: dict[str, str | None] = {}
        #: the register, when unknown municipalities are errors (None: they are created)
        self.known: Index | None = None
        self.errors: list[RowError] = []
        self.columns: list[str] = []
        self._unreadable = ""  # why the csv module refused the last unreadable row

    @classmethod
    def open(cls, source: BinaryIO | Path, *, region: str, batch_size: int, error_limit: int) -> _Reader:
        if isinstance(source, Path):
            counter = _CountingReader(source.open("rb"), owned=True)
        else:
            counter = _CountingReader(source, owned=False)
        reader = cls(counter, region=region, batch_size=batch_size, error_limit=error_limit)
        try:
            reader._read_header()
        except BaseException:
            reader.close()
            raise
        return reader

    def close(self) -> None:
        self._text.close()

    def _read_header(self) -> None:
        start = self._buffer.peek(4)[:4]
        if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise BadHeader("the file is UTF-16 text: save it as “CSV UTF-8”")
        if start == b"PK\x03\x04":
            raise BadHeader("the file is an Excel workbook: save it as “CSV UTF-8”")
        first = self._text.readline()
        if not first.strip():
            raise BadHeader("the file is empty: the first line must be the header")
        delimiter = max(_DELIMITERS, key=first.count)
        self._csv = csv.reader(itertools.chain([first], self._text), delimiter=delimiter)
        self._rows: Iterator[list[str] | None] = self._read_rows()
        cells = next(self._rows)
        if cells is None:
            raise BadHeader(f"the header cannot be read as CSV: {self._unreadable}")
        found = [mask_value(cell.strip()) for cell in cells]
        positions: dict[Column, int] = {}
        for at, cell in enumerate(cells):
            column = header_column(cell)
            if column is None:
                continue
            if column in positions:
                raise BadHeader(f"two {column} columns in the header", found=found)
            positions[column] = at
        if "phone" not in positions:
            raise BadHeader(
                "no phone column in the header: expected phone (or هاتف / رقم الهاتف), "
                f"optionally municipality (البلدية) and language (اللغة); found: {found}",
                found=found,
            )
        self._width = len(cells)
        self._phone_at = positions["phone"]
        self._municipality_at = positions.get("municipality")
        self._language_at = positions.get("language")
        self._sex_at = positions.get("sex")
        ages = [c for c in _AGE_COLUMNS if c in positions]
        if len(ages) > 1:
            raise BadHeader(f"the header has {' and '.join(ages)}: keep one column for the age", found=found)
        self._age = (ages[0], positions[ages[0]]) if ages else None
        self._this_year = datetime.now(UTC).year
        self.columns = [name for name, _ in sorted(positions.items(), key=lambda kv: kv[1])]

    def _read_rows(self) -> Iterator[list[str] | None]:
        """The rows, with None for one the csv module refuses (a field over its 128 KiB
        limit, say), so that one row is rejected instead of the whole import failing."""
        while True:
            try:
                row: list[str] | None = next(self._csv)
            except StopIteration:
                return
            except csv.Error as exc:
                self._unreadable = f"unreadable row: {exc}"
                row = None
            yield row

    def _reject(self, batch: _Batch, reason: str, value_masked: str) -> None:
        batch.rejected += 1
        if len(self.errors) < self._error_limit:
            self.errors.append(RowError(self._csv.line_num, reason, value_masked))

    def next_batch(self) -> _Batch | None:
        """The next ``batch_size`` lines, parsed; ``None`` at the end of the file."""
        batch = _Batch()
        citizens = batch.citizens
        seen = self._seen
        width, phone_at = self._width, self._phone_at
        municipality_at, language_at = self._municipality_at, self._language_at
        region = self._region
        lines = 0
        for row in itertools.islice(self._rows, self._batch_size):
            lines += 1
            if row is None:
                batch.rows += 1
                self._reject(batch, self._unreadable, "")
                continue
            if len(row) != width:
                if any(cell.strip() for cell in row):
                    batch.rows += 1
                    self._reject(batch, f"expected {width} fields, found {len(row)}", "")
                continue
            raw = row[phone_at]
            phone = fast_e164(raw, region)
            if phone is None:
                try:
                    phone = normalize_phone(raw, region)
                except InvalidPhone:
                    if not raw.strip():
                        if not any(cell.strip() for cell in row):
                            continue  # a blank line, or an Excel row of empty cells
                        batch.rows += 1
                        self._reject(batch, "missing phone", "")
                    else:
                        batch.rows += 1
                        self._reject(batch, "invalid phone number", _mask_phone_cell(raw))
                    continue
            batch.rows += 1
            language: Language | None = None
            if language_at is not None:
                cell = row[language_at]
                language = self._languages.get(cell)
                if language is None and cell.strip():
                    language = self._language(cell)
                    if language is None:
                        self._reject(batch, "unknown language", mask_value(cell.strip()))
                        continue
            municipality: str | None = None
            if municipality_at is not None:
                municipality = row[municipality_at].strip() or None
                if municipality is not None:
                    reason = self._municipality_error(municipality)
                    if reason is not None:
                        self._reject(batch, reason, mask_value(municipality))
                        continue
            sex = band = None
            if self._sex_at is not None or self._age is not None:
                profile = self._profile(row)
                if isinstance(profile, RowError):
                    self._reject(batch, profile.reason, profile.value_masked)
                    continue
                sex, band = profile
            earlier = citizens.get(phone)
            if earlier is not None:
                # Merged like a citizen already in the database: an empty cell keeps
                # the earlier row's value.
                batch.duplicates += 1
                municipality = municipality or earlier[0]
                language = language or earlier[1]
                sex = sex or earlier[2]
                band = band or earlier[3]
            else:
                number = int(phone[1:])
                if number in seen:
                    batch.repeats += 1
                    batch.duplicates += 1
                else:
                    seen.add(number)
            citizens[phone] = (municipality, language, sex, band)
        if not lines:
            return None
        batch.bytes_read = self._counter.count
        return batch

    def _profile(self, row: list[str]) -> tuple[str | None, str | None] | RowError:
        """The row's sex and age band (None where the cell is empty), or why it is refused
        (a ``RowError`` whose line the caller fills in)."""
        sex: str | None = None
        if self._sex_at is not None and (cell := row[self._sex_at].strip()):
            sex = parse_sex(cell)
            if sex is None:
                return RowError(
                    0, "unknown sex: expected m or f (ذكر / أنثى, male / female)", mask_value(cell)
                )
        band: str | None = None
        if self._age is not None and (cell := row[self._age[1]].strip()):
            column = self._age[0]
            if column == "age_band":
                band = parse_age_band(cell)
                reason = f"unknown age band: expected one of {', '.join(AGE_BANDS)}"
            elif column == "age":
                band = parse_age(cell)
                reason = "invalid age: expected whole years from 18 to 120"
            else:
                band = parse_birth_year(cell, this_year=self._this_year)
                reason = "invalid birth year: expected a year (four digits) of someone aged 18 to 120"
            if band is None:
                return RowError(0, reason, mask_value(cell))
        return sex, band

    def _language(self, cell: str) -> Language | None:
        language = parse_language(cell)
        if language is not None and len(self._languages) < _CACHE_LIMIT:
            self._languages[cell] = language
        return language

    def _municipality_error(self, value: str) -> str | None:
        try:
            return self._municipality_errors[value]
        except KeyError:
            pass
        reason: str | None = None
        if "\ufffd" in value:
            reason = "not UTF-8 text: save the file as “CSV UTF-8”"
        elif not valid_municipality(value):
            reason = "invalid municipality"
        elif self.known is not None and self.known.resolve(value) is None:
            reason = (
                f"unknown municipality “{mask_value(value)}”: not in the register "
                "(add it to the register, or import with --create-municipalities)"
            )
        if len(self._municipality_errors) < _CACHE_LIMIT:
            self._municipality_errors[value] = reason
        return reason
