"""Merging duplicate municipalities: one survivor keeps its id, everything that pointed at the
duplicates points at it, and their names become its aliases.

Duplicates come from imports made before the register matched folded names (``طرابلس``,
``Tripoli`` and ``طرابلس `` as three rows). Migration 0003 merged those already in the
database with its own copy of these steps; ``load_register`` merges the ones a register row
takes over; :func:`merge_municipalities` is there for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.citizens.fields import fold
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.municipalities.common import clean, keys_of, snapshot

M = models.table(models.Municipality)
MA = models.table(models.MunicipalityAlias)
UM = models.table(models.UserMunicipality)
CAMPAIGN = models.table(models.Campaign)


async def repoint(session: AsyncSession, survivor_id: int, duplicate_ids: Sequence[int]) -> None:
    """Citizens, tickets and staff scopes of ``duplicate_ids`` go to ``survivor_id``; the
    duplicates and their aliases are deleted (move the aliases first to keep them)."""
    dups = [i for i in duplicate_ids if i != survivor_id]
    if not dups:
        return
    for model in (models.Citizen, models.Ticket):
        t = models.table(model)
        await session.execute(
            update(t).where(t.c.municipality_id.in_(dups)).values(municipality_id=survivor_id)
        )
    # (user_id, municipality_id) is the key: a user scoped to two of them gets the survivor once.
    has_survivor = select(UM.c.user_id).where(UM.c.municipality_id == survivor_id)
    users = (
        await session.execute(
            select(UM.c.user_id)
            .where(UM.c.municipality_id.in_(dups), UM.c.user_id.not_in(has_survivor))
            .distinct()
        )
    ).scalars()
    rows = [{"user_id": user_id, "municipality_id": survivor_id} for user_id in users]
    if rows:
        await session.execute(insert(UM), rows)
    await session.execute(delete(UM).where(UM.c.municipality_id.in_(dups)))
    await session.execute(delete(MA).where(MA.c.municipality_id.in_(dups)))
    await session.execute(delete(M).where(M.c.id.in_(dups)))


async def rename_in_audiences(session: AsyncSession, codes: Mapping[str, str]) -> int:
    """Campaign audiences name municipalities by code: replace the old codes by the new ones.
    Returns how many campaigns changed."""
    renames = {old: new for old, new in codes.items() if old != new}
    if not renames:
        return 0
    changed = 0
    for campaign_id, audience in await session.execute(select(CAMPAIGN.c.id, CAMPAIGN.c.audience)):
        listed = audience.get("municipalities") if isinstance(audience, dict) else None
        if not isinstance(listed, list) or not any(code in renames for code in listed):
            continue
        after: list[Any] = []
        for code in listed:
            code = renames.get(code, code)
            if code not in after:
                after.append(code)
        await session.execute(
            update(CAMPAIGN)
            .where(CAMPAIGN.c.id == campaign_id)
            .values(audience={**audience, "municipalities": after})
        )
        changed += 1
    return changed


async def merge_municipalities(
    session: AsyncSession, survivor_id: int, duplicate_ids: Sequence[int], *, actor: str | Actor
) -> None:
    """Merge ``duplicate_ids`` into ``survivor_id``: references repointed, the duplicates'
    codes, names and aliases kept as the survivor's aliases, audience codes renamed, audited."""
    ids = [survivor_id, *(i for i in duplicate_ids if i != survivor_id)]
    found = {r.id: r for r in await session.execute(select(M).where(M.c.id.in_(ids)))}
    if survivor_id not in found or len(found) != len(set(ids)):
        raise NotFound(N_("No such municipality."))
    aliases: dict[int, list[str]] = {i: [] for i in ids}
    for municipality_id, alias in await session.execute(
        select(MA.c.municipality_id, MA.c.alias).where(MA.c.municipality_id.in_(ids)).order_by(MA.c.id)
    ):
        aliases[municipality_id].append(alias)
    survivor = found[survivor_id]
    taken = set(keys_of(survivor.code, survivor.name_ar, survivor.name_en, aliases[survivor_id]))
    moved: list[str] = []
    before: list[dict[str, Any]] = []
    for dup_id in ids[1:]:
        dup = found[dup_id]
        before.append({"id": dup_id} | _snapshot(dup, aliases[dup_id]))
        for value in (dup.code, dup.name_ar, dup.name_en, *aliases[dup_id]):
            text, key = clean(value), fold(value)
            if key and key not in taken:
                taken.add(key)
                moved.append(text)
    await repoint(session, survivor_id, ids[1:])
    if moved:
        await session.execute(
            insert(MA), [{"municipality_id": survivor_id, "alias": a, "key": fold(a)} for a in moved]
        )
    await rename_in_audiences(session, {found[i].code: survivor.code for i in ids[1:]})
    audit(
        session,
        actor=actor,
        action="municipality.merge",
        target=f"municipality:{survivor_id}",
        before={"merged": before},
        after=_snapshot(survivor, [*aliases[survivor_id], *moved]),
    )


def _snapshot(row: Any, aliases: list[str]) -> dict[str, Any]:
    return snapshot(
        code=row.code,
        name_ar=row.name_ar,
        name_en=row.name_en,
        district_code=row.district_code,
        district_ar=row.district_ar,
        district_en=row.district_en,
        aliases=aliases,
    )
