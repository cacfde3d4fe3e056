"""Benchmark: import a generated citizen register into a scratch PostgreSQL database.

    .venv/bin/python scripts/bench/import_citizens.py --rows 1000000

The register looks like the real ones: an Excel "CSV UTF-8" export (BOM, CRLF, Arabic
headers), numbers typed every which way (09x, +2189x, 002189x, 9x, Arabic-Indic and
Eastern Arabic-Indic digits, spaces, dashes), about 60 municipalities named in Arabic,
ar/en in several spellings, ~1% bad rows and ~1% repeated numbers. The same file is then
loaded by a plain COPY (one text column per line: the bad rows would stop a typed COPY),
which is the floor the importer is measured against. One JSON object goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import _common

from callcenter.citizens.importer import import_citizens

MUNICIPALITIES = (
    "طرابلس المركز", "بنغازي", "مصراتة", "الزاوية", "زليتن", "الخمس", "سبها", "سرت", "ترهونة",
    "غريان", "درنة", "البيضاء", "طبرق", "أجدابيا", "المرج", "زوارة", "صبراتة", "صرمان", "يفرن",
    "نالوت", "غدامس", "الكفرة", "أوباري", "مرزق", "هون", "ودان", "سوكنة", "بني وليد", "مسلاتة",
    "قصر الأخيار", "تاجوراء", "جنزور", "سوق الجمعة", "أبو سليم", "حي الأندلس", "عين زارة",
    "قصر بن غشير", "السواني", "العزيزية", "الماية", "ككلة", "الرجبان", "الزنتان", "جادو",
    "كاباو", "الأصابعة", "مزدة", "الشويرف", "براك الشاطئ", "غات", "تراغن", "القطرون",
    "الأبيار", "توكرة", "قمينس", "سلوق", "شحات", "القبة", "البريقة", "الجغبوب",
)  # fmt: skip
LANGUAGES = ("ar",) * 80 + ("en",) * 8 + ("عربي",) * 4 + ("English",) * 3 + ("",) * 5
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EASTERN_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
MOBILES = 6 * 10**7  # 91x … 96x, seven digits each


def nsn(index: int) -> str:
    """The index-th Libyan mobile national number: 9[1-6] and seven digits."""
    return f"9{1 + index // 10**7}{index % 10**7:07d}"


def formatted(number: str, rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.35:
        return "0" + number
    if shape < 0.55:
        return "+218" + number
    if shape < 0.65:
        return "00218" + number
    if shape < 0.75:
        return ("0" + number).translate(ARABIC_INDIC)
    if shape < 0.80:
        return ("0" + number).translate(EASTERN_INDIC)
    if shape < 0.85:
        return f"0{number[:2]}-{number[2:5]}-{number[5:]}"
    if shape < 0.90:
        return f"0{number[:2]} {number[2:5]} {number[5:]}"
    if shape < 0.95:
        return f"+218 {number[:2]} {number[2:5]} {number[5:]}"
    return number


def _mobile(rng: random.Random) -> str:
    return f"09{rng.randrange(1, 7)}{rng.randrange(10**7):07d}"


def _town(rng: random.Random) -> str:
    return rng.choice(MUNICIPALITIES)


BAD_ROWS = (
    lambda rng: f"09{rng.randrange(1000):03d},{_town(rng)},ar",  # too short
    lambda rng: f"n/a,{_town(rng)},ar",
    lambda rng: f"0{rng.randrange(10**8, 2 * 10**8)},{_town(rng)},ar",  # no such prefix
    lambda rng: f"{_mobile(rng)},{_town(rng)},fr",  # unknown language
    lambda rng: f"{_mobile(rng)},{_town(rng)},ar,x",  # a field too many
    lambda rng: f"{_mobile(rng)}",  # fields missing
)


def generate(path: Path, rows: int, *, seed: int) -> None:
    """Write ``rows`` data rows: ~1% bad, ~1% repeating an earlier number."""
    rng = random.Random(seed)
    numbers = [nsn(i) for i in rng.sample(range(MOBILES), rows)]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("\ufeffرقم الهاتف,البلدية,اللغة\r\n")
        lines: list[str] = []
        for i in range(rows):
            kind = rng.random()
            if kind < 0.01:
                lines.append(rng.choice(BAD_ROWS)(rng))
            else:
                number = numbers[rng.randrange(i)] if kind < 0.02 and i else numbers[i]
                lines.append(f"{formatted(number, rng)},{rng.choice(MUNICIPALITIES)},{rng.choice(LANGUAGES)}")
            if len(lines) >= 50_000:
                out.write("\r\n".join(lines) + "\r\n")
                lines.clear()
        if lines:
            out.write("\r\n".join(lines) + "\r\n")


async def plain_copy(url: str, path: Path) -> float:
    """Seconds for COPY of the raw file, each line one text value: the speed of light."""
    conn = await _common.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_raw_register (line text)")
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_raw_register", source=path, format="csv", header=True,
            delimiter="\x01", quote="\x02",
        )  # fmt: skip
        return time.perf_counter() - started
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cc_bench_import_"))
    path = workdir / "register.csv"
    try:
        started = time.perf_counter()
        generate(path, args.rows, seed=args.seed)
        generate_seconds = time.perf_counter() - started
        _common.note(f"generated {args.rows} rows in {generate_seconds:.1f} s: {path}")
        async with _common.scratch_database(args.database_url, keep=args.keep) as url:
            async with _common.engine_for(url) as engine:
                # A scratch database has an empty register: the names are added as they come,
                # as the importer always did before unknown municipalities became errors.
                report = await import_citizens(
                    engine, path, batch_size=args.batch_size, create_municipalities=True
                )
            copy_seconds = await plain_copy(url, path)
            conn = await _common.connect(url)
            try:
                citizens = await conn.fetchval("SELECT count(*) FROM citizen")
            finally:
                await conn.close()
        _common.emit(
            {
                "rows": report.rows,
                "imported": report.imported,
                "updated": report.updated,
                "duplicates": report.duplicates,
                "rejected": report.rejected,
                "municipalities_created": report.municipalities_created,
                "citizens_in_db": citizens,
                "seconds": round(report.seconds, 3),
                "rows_per_s": round(report.rows / report.seconds) if report.seconds else None,
                "copy_seconds": round(copy_seconds, 3),
                "generate_seconds": round(generate_seconds, 3),
                "file_mb": round(path.stat().st_size / 2**20, 1),
                "batch_size": args.batch_size,
                "cpus": os.cpu_count(),
            }
        )
    finally:
        if args.keep:
            _common.note(f"kept {path}")
        else:
            _remove(workdir)


def _remove(workdir: Path) -> None:
    for child in workdir.iterdir():
        child.unlink()
    workdir.rmdir()


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1415)


if __name__ == "__main__":
    asyncio.run(main(_common.parse_args(__doc__ or "", _options)))
