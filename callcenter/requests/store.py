"""The catalogue and the working calendar in the database.

``load`` puts a catalogue file (``callcenter requests load``) in the tables: checked whole
first (municipality codes against the register, keypad codes against the categories already
there), upserted by body and category key, each listed category's overrides replaced by the
file's, audited. Categories and bodies the file does not list stay (requests point at them).

``read_catalogue`` gives it back as catalogue.Catalogue; ``load_calendar`` builds the working
calendar from the settings and the ministry's holiday corrections, which
``correct_holiday`` / ``drop_correction`` change (audited).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.requests.calendar import HolidayCorrection, WorkingCalendar, libya_holidays
from callcenter.requests.catalogue import (
    Body,
    Catalogue,
    CatalogueFileError,
    Category,
    Question,
    parse,
)
from callcenter.requests.sla import Targets
from callcenter.settings import Settings

BODY = models.table(models.ResponsibleBody)
CATEGORY = models.table(models.ServiceCategory)
OVERRIDE = models.table(models.CategoryBody)
MUNICIPALITY = models.table(models.Municipality)
CORRECTION = models.table(models.HolidayCorrection)


@dataclass(frozen=True, slots=True)
class Loaded:
    bodies: int
    categories: int
    overrides: int


async def load(engine: AsyncEngine, text: str, *, actor: str | Actor) -> Loaded:
    """Check the file whole, then upsert its bodies and categories; nothing is written when
    anything is wrong (``CatalogueFileError`` names it)."""
    catalogue = parse(text)
    async with AsyncSession(engine) as session, session.begin():
        conn = await session.connection()
        municipalities = await _municipality_ids(conn, catalogue.municipalities())
        await _check_keypads(conn, catalogue)
        bodies = await _upsert_bodies(conn, catalogue, municipalities)
        categories = await _upsert_categories(conn, catalogue, bodies)
        overrides = 0
        for cat in catalogue.categories.values():
            await conn.execute(delete(OVERRIDE).where(OVERRIDE.c.category_id == categories[cat.key]))
            for code, body in cat.overrides.items():
                await conn.execute(
                    insert(OVERRIDE).values(
                        category_id=categories[cat.key], municipality_id=municipalities[code],
                        body_id=bodies[body],
                    )
                )  # fmt: skip
                overrides += 1
        audit(
            session, actor=actor, action="requests.catalogue.load", target="requests.catalogue",
            after={"bodies": sorted(bodies), "categories": sorted(categories), "overrides": overrides},
        )  # fmt: skip
    return Loaded(len(catalogue.bodies), len(catalogue.categories), overrides)


async def _municipality_ids(conn: AsyncConnection, codes: set[str]) -> dict[str, int]:
    found = await conn.execute(
        select(MUNICIPALITY.c.code, MUNICIPALITY.c.id).where(MUNICIPALITY.c.code.in_(codes))
    )
    ids: dict[str, int] = {code: int(mid) for code, mid in found}
    unknown = sorted(codes - ids.keys())
    if unknown:
        raise CatalogueFileError(f"unknown municipality: {', '.join(unknown)} (not in the register)")
    return ids


async def _check_keypads(conn: AsyncConnection, catalogue: Catalogue) -> None:
    """A keypad code held by a category the file does not list would make two categories
    answer one key."""
    listed = set(catalogue.categories)
    wanted = {c.keypad: c.key for c in catalogue.categories.values()}
    rows = await conn.execute(select(CATEGORY.c.key, CATEGORY.c.keypad).where(CATEGORY.c.keypad.in_(wanted)))
    for key, keypad in rows:
        if key not in listed:
            raise CatalogueFileError(
                f"category {wanted[keypad]}: keypad code {keypad} is already {key}'s (not in the file)"
            )


async def _upsert_bodies(
    conn: AsyncConnection, catalogue: Catalogue, municipalities: dict[str, int]
) -> dict[str, int]:
    ids: dict[str, int] = {}
    for body in catalogue.bodies.values():
        values: dict[str, Any] = {
            "kind": body.kind, "name_ar": body.name_ar, "name_en": body.name_en, "active": True,
            "municipality_id": municipalities[body.municipality] if body.municipality else None,
        }  # fmt: skip
        ids[body.key] = await _upsert(conn, BODY, body.key, values, created_at=models.utcnow())
    return ids


async def _upsert_categories(
    conn: AsyncConnection, catalogue: Catalogue, bodies: dict[str, int]
) -> dict[str, int]:
    # keypad codes may move between listed categories: free them first (unique constraint)
    listed = list(catalogue.categories)
    for n, key in enumerate(listed):
        await conn.execute(update(CATEGORY).where(CATEGORY.c.key == key).values(keypad=f"~{chr(0x30 + n)}"))
    ids: dict[str, int] = {}
    now = models.utcnow()
    for cat in catalogue.categories.values():
        values: dict[str, Any] = {
            "keypad": cat.keypad, "name_ar": cat.name_ar, "name_en": cat.name_en,
            "questions": [{"key": q.key, "ar": q.ar, "en": q.en} for q in cat.questions],
            "first_response_hours": cat.targets.first_response_h,
            "resolution_hours": cat.targets.resolution_h,
            "default_body_id": bodies[cat.body], "active": True, "updated_at": now,
        }  # fmt: skip
        ids[cat.key] = await _upsert(conn, CATEGORY, cat.key, values, created_at=now)
    return ids


async def _upsert(conn: AsyncConnection, table: Any, key: str, values: dict[str, Any], **new: Any) -> int:
    found = (await conn.execute(select(table.c.id).where(table.c.key == key))).scalar()
    if found is not None:
        await conn.execute(update(table).where(table.c.id == found).values(**values))
        return int(found)
    made = await conn.execute(insert(table).values(key=key, **values, **new).returning(table.c.id))
    return int(made.scalar_one())


async def read_catalogue(conn: AsyncConnection, *, active_only: bool = True) -> Catalogue:
    """The catalogue as loaded (municipality codes in overrides and bodies)."""
    codes: dict[int, str] = {
        mid: code for mid, code in await conn.execute(select(MUNICIPALITY.c.id, MUNICIPALITY.c.code))
    }
    body_rows = (await conn.execute(select(BODY).order_by(BODY.c.key))).mappings().all()
    body_keys = {row["id"]: row["key"] for row in body_rows}
    bodies = {
        row["key"]: Body(
            row["key"], row["kind"], row["name_ar"], row["name_en"], codes.get(row["municipality_id"])
        )
        for row in body_rows
        if row["active"] or not active_only
    }
    overrides: dict[int, dict[str, str]] = {}
    for row in (await conn.execute(select(OVERRIDE))).mappings():
        overrides.setdefault(row["category_id"], {})[codes[row["municipality_id"]]] = body_keys[
            row["body_id"]
        ]
    query = select(CATEGORY).order_by(CATEGORY.c.keypad)
    if active_only:
        query = query.where(CATEGORY.c.active.is_(True))
    categories = {
        row["key"]: Category(
            key=row["key"],
            keypad=row["keypad"],
            name_ar=row["name_ar"],
            name_en=row["name_en"],
            targets=Targets(row["first_response_hours"], row["resolution_hours"]),
            body=body_keys[row["default_body_id"]],
            questions=tuple(Question(q["key"], q["ar"], q["en"]) for q in row["questions"]),
            overrides=overrides.get(row["id"], {}),
        )
        for row in (await conn.execute(query)).mappings()
    }
    return Catalogue(bodies, categories)


# -- the working calendar -----------------------------------------------------------------------


async def corrections(conn: AsyncConnection) -> list[HolidayCorrection]:
    rows = await conn.execute(
        select(CORRECTION.c.day, CORRECTION.c.action, CORRECTION.c.name).order_by(CORRECTION.c.day)
    )
    return [HolidayCorrection(day, action, name) for day, action, name in rows]


async def load_calendar(engine: AsyncEngine, settings: Settings) -> WorkingCalendar:
    """Libya's working calendar: the settings' hours and weekend, the public holidays, the
    ministry's corrections."""
    async with engine.connect() as conn:
        fixes = await corrections(conn)
    return calendar_from(settings, fixes)


def calendar_from(settings: Settings, fixes: list[HolidayCorrection]) -> WorkingCalendar:
    return WorkingCalendar(
        timezone=settings.timezone, start=settings.request_work_start, end=settings.request_work_end,
        weekend=settings.request_weekend, holidays=libya_holidays, corrections=fixes,
    )  # fmt: skip


async def correct_holiday(
    session: AsyncSession,
    day: date,
    action: Literal["add", "remove"],
    *,
    actor: str | Actor,
    name: str = "",
) -> None:
    """Add a day off or remove an estimated holiday (one correction per day: a new one
    replaces the day's). Recompute the SLA of the open requests it can move once committed:
    ``recompute.recompute_sla(engine, calendar, day=day)``."""
    if action not in ("add", "remove"):
        raise ValueError(f"a holiday correction adds or removes a day, not {action!r}")
    conn = await session.connection()
    before = (await conn.execute(select(CORRECTION.c.action).where(CORRECTION.c.day == day))).scalar()
    await conn.execute(delete(CORRECTION).where(CORRECTION.c.day == day))
    await conn.execute(
        insert(CORRECTION).values(
            day=day, action=action, name=name[:200], created_by=str(actor)[:100], created_at=models.utcnow()
        )
    )
    audit(
        session, actor=actor, action="requests.holiday.correct", target=f"holiday:{day.isoformat()}",
        before={"action": before} if before else None, after={"action": action, "name": name},
    )  # fmt: skip


async def drop_correction(session: AsyncSession, day: date, *, actor: str | Actor) -> bool:
    """Take a correction back (the package's calendar applies again to that day)."""
    conn = await session.connection()
    done = await conn.execute(delete(CORRECTION).where(CORRECTION.c.day == day))
    if done.rowcount:
        audit(session, actor=actor, action="requests.holiday.drop", target=f"holiday:{day.isoformat()}")
    return bool(done.rowcount)
