"""Names to municipality ids: one dictionary of folded keys, built once and read many times.

Usage::

    index = await load_index(session)
    index.resolve("طرابلس ")  # the id of the municipality that answers to it, or None

Registers name a municipality by its code, its Arabic or Latin name or any alias, spelt
with or without hamza, ta marbuta as ha, harakat, odd spacing: ``fold`` makes those one key.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.citizens.fields import fold, slug


class Index:
    """Folded key -> municipality id.

    When a key is claimed twice (a register loaded before duplicates were merged), a code
    beats a name and a name beats an alias; between equals the older municipality wins."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._names: dict[str, int] = {}
        self._aliases: dict[str, int] = {}
        self._ids: dict[str, int] = {}

    def add(self, municipality_id: int, code: str, name_ar: str, name_en: str) -> None:
        key = fold(code)
        if key:
            self._codes.setdefault(key, municipality_id)
            self._ids[key] = self._codes[key]
        for name in (name_ar, name_en):
            key = fold(name)
            if key:
                self._names.setdefault(key, municipality_id)
                if key not in self._codes:
                    self._ids[key] = self._names[key]

    def add_alias(self, municipality_id: int, alias: str) -> None:
        key = fold(alias)
        if key:
            self._aliases.setdefault(key, municipality_id)
            self._ids.setdefault(key, self._aliases[key])

    def resolve(self, name: str) -> int | None:
        """The municipality ``name`` designates (code, name or alias), or None.

        A name that is not a key may still be the code the importer once made from it
        (``Souq Al Juma`` -> ``souq-al-juma``)."""
        key = fold(name)
        found = self._ids.get(key)
        if found is None and key:
            found = self._codes.get(fold(slug(name)))
        return found

    def __len__(self) -> int:
        return len(self._ids)


async def load_index(db: AsyncSession | AsyncConnection) -> Index:
    """Every municipality and alias in two queries (the register has hundreds of rows)."""
    M, MA = models.table(models.Municipality), models.table(models.MunicipalityAlias)
    index = Index()
    for row in await db.execute(select(M.c.id, M.c.code, M.c.name_ar, M.c.name_en).order_by(M.c.id)):
        index.add(row.id, row.code, row.name_ar, row.name_en)
    aliases = await db.execute(select(MA.c.municipality_id, MA.c.alias).order_by(MA.c.municipality_id))
    for municipality_id, alias in aliases:
        index.add_alias(municipality_id, alias)
    return index
