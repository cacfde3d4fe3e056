"""Where the importer writes: the upsert of a batch of citizens, per database.

PostgreSQL gets the fast path (COPY into a temporary staging table, then one
``INSERT … SELECT … ON CONFLICT``); SQLite, the embedded default for small deployments,
gets an ``executemany`` of the same upsert. Both keep the same rules:

* an empty municipality, language, sex or age band cell never erases what the database
  already knows;
* rows that would not change are not rewritten (a re-import of the same register costs
  reads, not a table's worth of dead rows);
* ``opted_out_at`` is never touched: re-importing a register must not re-subscribe anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter.models import utcnow

# (E.164 phone, municipality id, "ar"/"en", "m"/"f", age band), None where the file did not say
CitizenRow = tuple[str, int | None, str | None, str | None, str | None]
MunicipalityRow = tuple[int, str, str, str]  # id, code, name_ar, name_en
AliasRow = tuple[int, str]  # municipality id, alias


class Store(Protocol):
    async def municipalities(self) -> list[MunicipalityRow]: ...

    async def municipality_aliases(self) -> list[AliasRow]: ...

    async def create_municipality(self, code: str, name_ar: str, name_en: str) -> tuple[int, bool]:
        """The id of the municipality with ``code``, and whether this call created it."""
        ...

    async def upsert(self, rows: Sequence[CitizenRow], *, default_language: str) -> int:
        """Insert or merge ``rows`` (unique phones) in one transaction; return how many
        were new. The others already existed."""
        ...

    async def close(self) -> None:
        """After a successful import: release what the store set up on the connection."""
        ...


async def open_store(conn: AsyncConnection) -> Store:
    if conn.dialect.name == "postgresql":
        return await PostgresStore.open(conn)
    if conn.dialect.name == "sqlite":
        return SqliteStore(conn)
    raise NotImplementedError(f"no citizen importer for {conn.dialect.name}")


class _Asyncpg(Protocol):
    """The part of ``asyncpg.Connection`` used here (asyncpg ships no type hints)."""

    async def execute(self, query: str, *args: object) -> str: ...

    async def fetch(self, query: str, *args: object) -> list[Any]: ...

    async def fetchval(self, query: str, *args: object) -> Any: ...

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[object]], columns: Sequence[str]
    ) -> str: ...

    def transaction(self) -> AbstractAsyncContextManager[Any]: ...


_STAGING = "_citizen_import"
# ON COMMIT DELETE ROWS: each batch's commit empties it. Created in each batch's transaction
# (IF NOT EXISTS: a catalogue lookup after the first), because behind PgBouncer's transaction
# pooling the next transaction may run on another server connection, without it.
_PG_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (
    phone text NOT NULL, municipality_id bigint, language text, sex text, age_band text
) ON COMMIT DELETE ROWS
"""


def _pg_upsert(*, language_given: bool) -> str:
    """One statement per kind of row: with a language (it replaces the stored one) or
    without (the stored one stays). ``EXCLUDED`` cannot tell them apart, so the staging
    rows are split by ``WHERE``. ``xmax = 0`` marks a row this statement inserted."""
    kept = {c: f"COALESCE(EXCLUDED.{c}, citizen.{c})" for c in ("municipality_id", "sex", "age_band")}
    if language_given:
        kept["language"] = "EXCLUDED.language"
    set_ = ", ".join(f"{c} = {v}" for c, v in kept.items())
    changed = f"({', '.join(f'citizen.{c}' for c in kept)}) IS DISTINCT FROM ({', '.join(kept.values())})"
    return f"""
WITH written AS (
    INSERT INTO citizen (phone, municipality_id, language, sex, age_band, created_at)
    SELECT phone, municipality_id, COALESCE(language, $1), sex, age_band, now() FROM {_STAGING}
    WHERE language IS {"NOT " if language_given else ""}NULL
    ON CONFLICT (phone) DO UPDATE SET {set_} WHERE {changed}
    RETURNING xmax = 0 AS inserted
)
SELECT count(*) FROM written WHERE inserted
"""


_PG_UPSERT_WITH_LANGUAGE = _pg_upsert(language_given=True)
_PG_UPSERT_WITHOUT_LANGUAGE = _pg_upsert(language_given=False)


class PostgresStore:
    """COPY through the raw asyncpg connection: about ten times faster than INSERTs."""

    def __init__(self, driver: _Asyncpg) -> None:
        self._db = driver

    @classmethod
    async def open(cls, conn: AsyncConnection) -> PostgresStore:
        raw = await conn.get_raw_connection()
        return cls(cast(_Asyncpg, raw.driver_connection))

    async def municipalities(self) -> list[MunicipalityRow]:
        rows = await self._db.fetch("SELECT id, code, name_ar, name_en FROM municipality ORDER BY id")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def municipality_aliases(self) -> list[AliasRow]:
        rows = await self._db.fetch("SELECT municipality_id, alias FROM municipality_alias ORDER BY id")
        return [(r[0], r[1]) for r in rows]

    async def create_municipality(self, code: str, name_ar: str, name_en: str) -> tuple[int, bool]:
        new = await self._db.fetchval(
            "INSERT INTO municipality (code, name_ar, name_en) VALUES ($1, $2, $3)"
            " ON CONFLICT (code) DO NOTHING RETURNING id",
            code, name_ar, name_en,
        )  # fmt: skip
        if new is not None:
            return int(new), True
        old = await self._db.fetchval("SELECT id FROM municipality WHERE code = $1", code)
        return int(old), False

    async def upsert(self, rows: Sequence[CitizenRow], *, default_language: str) -> int:
        with_language = sum(1 for row in rows if row[2] is not None)
        inserted = 0
        async with self._db.transaction():
            await self._db.execute(_PG_STAGING)
            await self._db.copy_records_to_table(
                _STAGING, records=rows, columns=("phone", "municipality_id", "language", "sex", "age_band")
            )
            if with_language:
                inserted += await self._db.fetchval(_PG_UPSERT_WITH_LANGUAGE, default_language)
            if with_language < len(rows):
                inserted += await self._db.fetchval(_PG_UPSERT_WITHOUT_LANGUAGE, default_language)
        return inserted

    async def close(self) -> None:
        """Leave no staging table behind in the pooled connection."""
        await self._db.execute(f"DROP TABLE IF EXISTS pg_temp.{_STAGING}")


_SQLITE_EXISTING = text("SELECT count(*) FROM citizen WHERE phone IN (SELECT value FROM json_each(:phones))")
# A bound parameter may appear in DO UPDATE, so one statement covers both kinds of row.
_SQLITE_UPSERT = text("""
INSERT INTO citizen (phone, municipality_id, language, sex, age_band, created_at)
VALUES (:phone, :municipality_id, COALESCE(:language, :default_language), :sex, :age_band, :created_at)
ON CONFLICT (phone) DO UPDATE SET
    municipality_id = COALESCE(excluded.municipality_id, citizen.municipality_id),
    language = COALESCE(:language, citizen.language),
    sex = COALESCE(excluded.sex, citizen.sex),
    age_band = COALESCE(excluded.age_band, citizen.age_band)
WHERE citizen.municipality_id IS NOT COALESCE(excluded.municipality_id, citizen.municipality_id)
   OR citizen.language IS NOT COALESCE(:language, citizen.language)
   OR citizen.sex IS NOT COALESCE(excluded.sex, citizen.sex)
   OR citizen.age_band IS NOT COALESCE(excluded.age_band, citizen.age_band)
""").bindparams(bindparam("created_at", type_=DateTime(timezone=True)))


class SqliteStore:
    """``executemany`` in one transaction per batch; SQLite has a single writer anyway."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def municipalities(self) -> list[MunicipalityRow]:
        result = await self._conn.execute(
            text("SELECT id, code, name_ar, name_en FROM municipality ORDER BY id")
        )
        await self._conn.commit()
        return [(r[0], r[1], r[2], r[3]) for r in result.all()]

    async def municipality_aliases(self) -> list[AliasRow]:
        result = await self._conn.execute(
            text("SELECT municipality_id, alias FROM municipality_alias ORDER BY id")
        )
        await self._conn.commit()
        return [(r[0], r[1]) for r in result.all()]

    async def create_municipality(self, code: str, name_ar: str, name_en: str) -> tuple[int, bool]:
        async with self._conn.begin():
            new = await self._conn.scalar(
                text(
                    "INSERT INTO municipality (code, name_ar, name_en) VALUES (:c, :ar, :en)"
                    " ON CONFLICT (code) DO NOTHING RETURNING id"
                ),
                {"c": code, "ar": name_ar, "en": name_en},
            )
            if new is not None:
                return int(new), True
            old = await self._conn.scalar(text("SELECT id FROM municipality WHERE code = :c"), {"c": code})
            return int(old), False

    async def upsert(self, rows: Sequence[CitizenRow], *, default_language: str) -> int:
        now = utcnow()
        async with self._conn.begin():
            existing = await self._conn.scalar(
                _SQLITE_EXISTING, {"phones": json.dumps([row[0] for row in rows])}
            )
            await self._conn.execute(
                _SQLITE_UPSERT,
                [
                    {
                        "phone": phone,
                        "municipality_id": municipality_id,
                        "language": language,
                        "sex": sex,
                        "age_band": age_band,
                        "default_language": default_language,
                        "created_at": now,
                    }
                    for phone, municipality_id, language, sex, age_band in rows
                ],
            )
        return len(rows) - int(existing or 0)

    async def close(self) -> None:
        return None
