"""The catalogue edited one item at a time (the admin pages): a category, a responsible body,
a category's override for one municipality. Each save is checked first (the problems come
back as message ids with the field they belong to, for the page to say in the reader's
language), then written and audited with the values before and after.

The checks are the file loader's (catalogue.parse) for one item: keys of lower-case letters,
digits, '-' and '_'; an Arabic name in Arabic letters and an English one; keypad codes 1 to
99, one category per code; 0 < first response <= resolution, in working hours. New SLA
targets apply to open requests at the next SLA recompute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.messages import N_
from callcenter.requests.catalogue import KINDS, NAME_LIMIT, QUESTION_LIMIT

CATEGORY = models.table(models.ServiceCategory)
BODY = models.table(models.ResponsibleBody)
OVERRIDE = models.table(models.CategoryBody)
MUNICIPALITY = models.table(models.Municipality)

KEY: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
KEYPAD: Final = re.compile(r"^[1-9][0-9]?$")
ARABIC: Final = re.compile(r"[\u0600-\u06ff]")
MAX_HOURS: Final = 24 * 365


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str  # a message id


class CatalogueFormError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(slots=True)
class BodyForm:
    key: str = ""
    kind: str = "municipal"
    name_ar: str = ""
    name_en: str = ""
    municipality_id: int | None = None
    active: bool = True


@dataclass(slots=True)
class CategoryForm:
    key: str = ""
    keypad: str = ""
    name_ar: str = ""
    name_en: str = ""
    first_response_hours: str = ""
    resolution_hours: str = ""
    body_id: int | None = None
    active: bool = True
    questions: str = ""  # one a line: key | Arabic | English
    parsed_questions: list[dict[str, str]] = field(default_factory=list)


def _names(ar: str, en: str, problems: list[Problem]) -> None:
    if not ar.strip():
        problems.append(Problem("name_ar", N_("Enter the Arabic name.")))
    elif not ARABIC.search(ar):
        problems.append(Problem("name_ar", N_("Write the Arabic name in Arabic letters.")))
    if not en.strip():
        problems.append(Problem("name_en", N_("Enter the English name.")))
    if max(len(ar), len(en)) > NAME_LIMIT:
        problems.append(Problem("name_ar", N_("A name has at most 200 characters.")))


def _key(key: str, problems: list[Problem]) -> None:
    if not KEY.match(key):
        problems.append(
            Problem("key", N_("A key is made of lower-case Latin letters, digits, '-' and '_' (48 at most)."))
        )


def _hours(value: str) -> float | None:
    try:
        hours = float(value.replace(",", "."))
    except ValueError:
        return None
    return hours if 0 < hours <= MAX_HOURS else None


def _questions(text: str, problems: list[Problem]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or not KEY.match(parts[0]) or not parts[1] or not parts[2]:
            problems.append(Problem("questions", N_("Write each question as: key | Arabic | English.")))
            return out
        if max(len(parts[1]), len(parts[2])) > QUESTION_LIMIT:
            problems.append(Problem("questions", N_("A question has at most 300 characters.")))
            return out
        if parts[0] in {q["key"] for q in out}:
            problems.append(Problem("questions", N_("Each question has its own key.")))
            return out
        out.append({"key": parts[0], "ar": parts[1], "en": parts[2]})
    return out


def questions_text(questions: list[dict[str, str]]) -> str:
    return "\n".join(f"{q['key']} | {q['ar']} | {q['en']}" for q in questions)


async def _taken(conn: AsyncConnection, column: Any, value: str, own_id: int | None) -> bool:
    table = column.table
    found = (await conn.execute(select(table.c.id).where(column == value))).scalar()
    return found is not None and found != own_id


async def save_category(
    session: AsyncSession, form: CategoryForm, *, actor: str | Actor, category_id: int | None = None
) -> int:
    """Add a category (``category_id`` None) or change one; ``CatalogueFormError`` lists
    what to correct."""
    conn = await session.connection()
    problems: list[Problem] = []
    if category_id is None:
        _key(form.key, problems)
        if not problems and await _taken(conn, CATEGORY.c.key, form.key, None):
            problems.append(Problem("key", N_("Another category has this key.")))
    if not KEYPAD.match(form.keypad):
        problems.append(Problem("keypad", N_("The keypad code is a number from 1 to 99.")))
    elif await _taken(conn, CATEGORY.c.keypad, form.keypad, category_id):
        problems.append(Problem("keypad", N_("Another category answers this keypad code.")))
    _names(form.name_ar, form.name_en, problems)
    first, resolution = _hours(form.first_response_hours), _hours(form.resolution_hours)
    if first is None:
        problems.append(Problem("first_response_hours", N_("Enter the working hours to the first response.")))
    if resolution is None:
        problems.append(Problem("resolution_hours", N_("Enter the working hours to the resolution.")))
    elif first is not None and first > resolution:
        problems.append(
            Problem("resolution_hours", N_("The resolution cannot be due before the first response."))
        )
    if form.body_id is None or await _body(conn, form.body_id) is None:
        problems.append(Problem("body_id", N_("Choose the body responsible by default.")))
    form.parsed_questions = _questions(form.questions, problems)
    if problems:
        raise CatalogueFormError(problems)
    values: dict[str, Any] = {
        "keypad": form.keypad, "name_ar": form.name_ar.strip(), "name_en": form.name_en.strip(),
        "first_response_hours": first, "resolution_hours": resolution, "default_body_id": form.body_id,
        "active": form.active, "questions": form.parsed_questions, "updated_at": models.utcnow(),
    }  # fmt: skip
    return await _write(session, conn, CATEGORY, category_id, form.key, values, actor, "category")


async def save_body(
    session: AsyncSession, form: BodyForm, *, actor: str | Actor, body_id: int | None = None
) -> int:
    """Add a responsible body or change one."""
    conn = await session.connection()
    problems: list[Problem] = []
    if body_id is None:
        _key(form.key, problems)
        if not problems and await _taken(conn, BODY.c.key, form.key, None):
            problems.append(Problem("key", N_("Another body has this key.")))
    if form.kind not in KINDS:
        problems.append(Problem("kind", N_("Choose municipal or national.")))
    elif form.kind == "national" and form.municipality_id is not None:
        problems.append(Problem("municipality_id", N_("Only a municipal body belongs to one municipality.")))
    if form.municipality_id is not None:
        known = await conn.execute(select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.id == form.municipality_id))
        if known.scalar() is None:
            problems.append(Problem("municipality_id", N_("Choose a municipality from the list.")))
    _names(form.name_ar, form.name_en, problems)
    if problems:
        raise CatalogueFormError(problems)
    values: dict[str, Any] = {
        "kind": form.kind, "name_ar": form.name_ar.strip(), "name_en": form.name_en.strip(),
        "municipality_id": form.municipality_id, "active": form.active,
    }  # fmt: skip
    return await _write(session, conn, BODY, body_id, form.key, values, actor, "body")


async def _write(
    session: AsyncSession, conn: AsyncConnection, table: Any, row_id: int | None, key: str,
    values: dict[str, Any], actor: str | Actor, what: str,
) -> int:  # fmt: skip
    before: dict[str, Any] | None = None
    shown = {k: v for k, v in values.items() if k != "updated_at"}
    if row_id is None:
        made = await conn.execute(
            insert(table).values(key=key, created_at=models.utcnow(), **values).returning(table.c.id)
        )
        row_id = int(made.scalar_one())
    else:
        old = (await conn.execute(select(table).where(table.c.id == row_id))).mappings().one()
        before = {k: old[k] for k in shown}
        await conn.execute(update(table).where(table.c.id == row_id).values(**values))
    audit(
        session, actor=actor, action=f"requests.catalogue.{what}", target=f"{what}:{row_id}",
        before=before, after=shown,
    )  # fmt: skip
    return row_id


async def _body(conn: AsyncConnection, body_id: int) -> RowMapping | None:
    return (await conn.execute(select(BODY).where(BODY.c.id == body_id))).mappings().one_or_none()


async def set_override(
    session: AsyncSession, category_id: int, municipality_id: int, body_id: int | None, *, actor: str | Actor
) -> None:
    """In this municipality the category goes to ``body_id`` (None: back to its default)."""
    conn = await session.connection()
    problems: list[Problem] = []
    known = await conn.execute(select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.id == municipality_id))
    if known.scalar() is None:
        problems.append(Problem("municipality_id", N_("Choose a municipality from the list.")))
    if body_id is not None and await _body(conn, body_id) is None:
        problems.append(Problem("body_id", N_("Choose a responsible body from the list.")))
    if problems:
        raise CatalogueFormError(problems)
    where = (OVERRIDE.c.category_id == category_id, OVERRIDE.c.municipality_id == municipality_id)
    before = (await conn.execute(select(OVERRIDE.c.body_id).where(*where))).scalar()
    await conn.execute(delete(OVERRIDE).where(*where))
    if body_id is not None:
        await conn.execute(
            insert(OVERRIDE).values(category_id=category_id, municipality_id=municipality_id, body_id=body_id)
        )
    audit(
        session, actor=actor, action="requests.catalogue.override", target=f"category:{category_id}",
        before={"municipality_id": municipality_id, "body_id": before},
        after={"municipality_id": municipality_id, "body_id": body_id},
    )  # fmt: skip


# -- reading for the pages ----------------------------------------------------------------------


async def category_rows(conn: AsyncConnection) -> list[RowMapping]:
    return list((await conn.execute(select(CATEGORY).order_by(CATEGORY.c.keypad))).mappings().all())


async def body_rows(conn: AsyncConnection) -> list[RowMapping]:
    return list((await conn.execute(select(BODY).order_by(BODY.c.kind, BODY.c.key))).mappings().all())


async def category_row(conn: AsyncConnection, category_id: int) -> RowMapping | None:
    found = await conn.execute(select(CATEGORY).where(CATEGORY.c.id == category_id))
    return found.mappings().one_or_none()


async def body_row(conn: AsyncConnection, body_id: int) -> RowMapping | None:
    return await _body(conn, body_id)


async def overrides_of(conn: AsyncConnection, category_id: int) -> list[RowMapping]:
    query = (
        select(
            OVERRIDE.c.municipality_id, MUNICIPALITY.c.name_ar.label("municipality_ar"),
            MUNICIPALITY.c.name_en.label("municipality_en"), BODY.c.id.label("body_id"),
            BODY.c.name_ar.label("body_ar"), BODY.c.name_en.label("body_en"),
        )
        .join(MUNICIPALITY, MUNICIPALITY.c.id == OVERRIDE.c.municipality_id)
        .join(BODY, BODY.c.id == OVERRIDE.c.body_id)
        .where(OVERRIDE.c.category_id == category_id)
        .order_by(MUNICIPALITY.c.name_ar)
    )  # fmt: skip
    return list((await conn.execute(query)).mappings().all())


async def municipality_choices(conn: AsyncConnection) -> list[RowMapping]:
    query = select(MUNICIPALITY.c.id, MUNICIPALITY.c.name_ar, MUNICIPALITY.c.name_en).order_by(
        MUNICIPALITY.c.name_ar
    )
    return list((await conn.execute(query)).mappings().all())
