"""The stored population tables (``population_margin``): load a file, list, delete, read back
for weighting. Every change is audited in the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.analysis.margins import Table, join_cell, parse, split_cell
from callcenter.audit import Actor, audit
from callcenter.citizens.fields import fold
from callcenter.municipalities.index import load_index

PM = models.table(models.PopulationMargin)
MU = models.table(models.Municipality)


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored table, for the list on the page."""

    key: str
    variables: tuple[str, ...]
    cells: int
    total: float
    source: str
    created_by: str


async def _resolvers(session: AsyncSession) -> tuple[dict[int, str], dict[str, str]]:
    codes = {row.id: row.code for row in await session.execute(select(MU.c.id, MU.c.code))}
    districts: dict[str, str] = {}
    for row in await session.execute(
        select(MU.c.district_code, MU.c.district_ar, MU.c.district_en).where(MU.c.district_code != "")
    ):
        for name in (row.district_code, row.district_ar, row.district_en):
            if name:
                districts.setdefault(fold(name), row.district_code)
    return codes, districts


async def load_file(session: AsyncSession, text: str, *, source: str, actor: Actor | str) -> Table:
    """Parse ``text`` against the register and store it in place of the table over the same
    attributes (raises ``MarginFileError``)."""
    index = await load_index(session)
    codes, districts = await _resolvers(session)

    def municipality(name: str) -> str | None:
        found = index.resolve(name)
        return None if found is None else codes.get(found)

    table = parse(text, municipality=municipality, district=lambda name: districts.get(fold(name)))
    before = await _summary(session, table.key)
    await session.execute(delete(PM).where(PM.c.variables == table.key))
    who = actor if isinstance(actor, Actor) else Actor(actor)
    await session.execute(
        insert(PM),
        [
            {
                "variables": table.key,
                "cell": join_cell(cell),
                "population": value,
                "source": source[:200],
                "created_by": who.name[:100],
            }
            for cell, value in table.cells.items()
        ],
    )
    audit(
        session,
        actor=actor,
        action="margins.load",
        target=f"margins:{table.key}",
        before=before,
        after={"cells": len(table.cells), "total": table.total, "source": source[:200]},
    )
    return table


async def _summary(session: AsyncSession, key: str) -> dict[str, float | int] | None:
    row = (
        await session.execute(select(func.count(), func.sum(PM.c.population)).where(PM.c.variables == key))
    ).one()
    return None if not row[0] else {"cells": int(row[0]), "total": float(row[1] or 0)}


async def delete_table(session: AsyncSession, key: str, *, actor: Actor | str) -> bool:
    before = await _summary(session, key[:200])
    if before is None:
        return False
    await session.execute(delete(PM).where(PM.c.variables == key[:200]))
    audit(session, actor=actor, action="margins.delete", target=f"margins:{key[:180]}", before=before)
    return True


async def stored_tables(db: AsyncSession | AsyncConnection) -> list[Table]:
    cells: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
    for row in await db.execute(select(PM.c.variables, PM.c.cell, PM.c.population)):
        cells[row.variables][split_cell(row.cell)] = float(row.population)
    return [Table(tuple(key.split(",")), values) for key, values in sorted(cells.items())]


async def listing(db: AsyncSession | AsyncConnection) -> list[Stored]:
    rows = await db.execute(
        select(
            PM.c.variables,
            func.count(),
            func.sum(PM.c.population),
            func.max(PM.c.source),
            func.max(PM.c.created_by),
        )
        .group_by(PM.c.variables)
        .order_by(PM.c.variables)
    )
    return [
        Stored(key, tuple(key.split(",")), int(n), float(total or 0), source or "", by or "")
        for key, n, total, source, by in rows
    ]
