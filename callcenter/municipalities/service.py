"""One municipality at a time, as the admin pages change it, and the register's list page.

Usage::

    page = await list_page(session, district="tripoli", page=1)
    row = await create_municipality(session, form, actor=actor)  # raises RegisterError
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.citizens.fields import fold
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.municipalities.common import (
    ALIAS_MAX,
    ALIASES_PER_MUNICIPALITY,
    CODE,
    CODE_MAX,
    NAME_MAX,
    Problem,
    RegisterError,
    clean,
    distinct_aliases,
    keys_of,
    snapshot,
)
from callcenter.municipalities.csvfile import check_district, shown

M = models.table(models.Municipality)
MA = models.table(models.MunicipalityAlias)
C = models.table(models.Citizen)
PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name_ar: str
    name_en: str


@dataclass(slots=True)
class Listed:
    id: int
    code: str
    name_ar: str
    name_en: str
    district: District
    aliases: list[str] = field(default_factory=list)
    citizens: int = 0


@dataclass(slots=True)
class ListPage:
    groups: list[tuple[District, list[Listed]]]
    districts: list[District]  # every district, for the filter
    total: int
    page: int
    pages: int


async def districts(session: AsyncSession) -> list[District]:
    result = await session.execute(
        select(M.c.district_code, func.min(M.c.district_ar), func.min(M.c.district_en))
        .where(M.c.district_code != "")
        .group_by(M.c.district_code)
        .order_by(M.c.district_code)
    )
    return [District(code, ar, en) for code, ar, en in result]


async def list_page(session: AsyncSession, *, district: str | None = None, page: int = 1) -> ListPage:
    """A page of the register, ordered by district then name, with each municipality's
    aliases and citizen count (one query each, for the page's rows only)."""
    where = [] if district is None else [M.c.district_code == district]
    total = int(await session.scalar(select(func.count()).select_from(M).where(*where)) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = (
        await session.execute(
            select(M)
            .where(*where)
            .order_by(M.c.district_code, M.c.name_ar, M.c.id)
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    ).all()
    listed = {
        r.id: Listed(
            r.id, r.code, r.name_ar, r.name_en, District(r.district_code, r.district_ar, r.district_en)
        )
        for r in rows
    }
    if listed:
        ids = list(listed)
        for municipality_id, alias in await session.execute(
            select(MA.c.municipality_id, MA.c.alias).where(MA.c.municipality_id.in_(ids)).order_by(MA.c.id)
        ):
            listed[municipality_id].aliases.append(alias)
        for municipality_id, n in await session.execute(
            select(C.c.municipality_id, func.count())
            .where(C.c.municipality_id.in_(ids))
            .group_by(C.c.municipality_id)
        ):
            listed[municipality_id].citizens = int(n)
    groups: list[tuple[District, list[Listed]]] = []
    for item in listed.values():
        if groups and groups[-1][0].code == item.district.code:
            groups[-1][1].append(item)
        else:
            groups.append((item.district, [item]))
    return ListPage(groups, await districts(session), total, page, pages)


@dataclass(slots=True)
class MunicipalityForm:
    """What the create and edit forms post (already cut to a sane length)."""

    code: str = ""
    name_ar: str = ""
    name_en: str = ""
    district_code: str = ""
    district_ar: str = ""
    district_en: str = ""
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, row: models.Municipality, aliases: list[str]) -> MunicipalityForm:
        return cls(
            row.code, row.name_ar, row.name_en, row.district_code, row.district_ar, row.district_en, aliases
        )

    def cleaned(self) -> MunicipalityForm:
        return MunicipalityForm(
            clean(self.code),
            clean(self.name_ar),
            clean(self.name_en),
            clean(self.district_code),
            clean(self.district_ar),
            clean(self.district_en),
            [a for a in (clean(v) for v in self.aliases) if a],
        )


async def get_municipality(
    session: AsyncSession, municipality_id: int
) -> tuple[models.Municipality, list[str]]:
    row = await session.get(models.Municipality, municipality_id)
    if row is None:
        raise NotFound(N_("No such municipality."))
    aliases = list(
        (
            await session.execute(
                select(MA.c.alias).where(MA.c.municipality_id == municipality_id).order_by(MA.c.id)
            )
        ).scalars()
    )
    return row, aliases


async def _check(
    session: AsyncSession, form: MunicipalityForm, *, municipality_id: int | None
) -> list[Problem]:
    problems: list[Problem] = []
    if municipality_id is None:
        if not form.code:
            problems.append(Problem(N_("Enter a code."), field="code"))
        elif len(form.code) > CODE_MAX or not CODE.fullmatch(form.code):
            problems.append(
                Problem(
                    N_(
                        "The code must be one word of at most %(max)s characters: letters, digits and dashes."
                    ),
                    {"max": CODE_MAX},
                    field="code",
                )
            )
    if not form.name_ar:
        problems.append(Problem(N_("Enter the Arabic name."), field="name_ar"))
    for name, value in (("name_ar", form.name_ar), ("name_en", form.name_en)):
        if len(value) > NAME_MAX:
            problems.append(Problem(N_("At most %(max)s characters."), {"max": NAME_MAX}, field=name))
    problems += check_district(form.district_code, form.district_ar, form.district_en)
    if form.district_code and not problems:
        known = {d.code: d for d in await districts(session)}.get(form.district_code)
        if known is not None and (fold(known.name_ar), fold(known.name_en)) != (
            fold(form.district_ar),
            fold(form.district_en),
        ):
            problems.append(
                Problem(
                    N_("District %(district)s is already named %(name)s."),
                    {"district": form.district_code, "name": known.name_ar},
                    field="district",
                )
            )
    if len(form.aliases) > ALIASES_PER_MUNICIPALITY:
        problems.append(
            Problem(N_("At most %(max)s aliases."), {"max": ALIASES_PER_MUNICIPALITY}, field="aliases")
        )
    for alias in form.aliases:
        if len(alias) > ALIAS_MAX:
            problems.append(
                Problem(
                    N_("Alias “%(alias)s” is longer than %(max)s characters."),
                    {"alias": shown(alias), "max": ALIAS_MAX},
                    field="aliases",
                )
            )
    # Every name and alias must designate this municipality alone.
    others: dict[str, str] = {}
    for row in await session.execute(select(M.c.id, M.c.code, M.c.name_ar, M.c.name_en)):
        if row.id != municipality_id:
            for key in keys_of(row.code, row.name_ar, row.name_en):
                others.setdefault(key, row.code)
    aliases = select(MA.c.alias, M.c.code).join(M, M.c.id == MA.c.municipality_id)
    if municipality_id is not None:
        aliases = aliases.where(MA.c.municipality_id != municipality_id)
    for alias, code in await session.execute(aliases):
        others.setdefault(fold(alias), code)
    for name, values in (
        ("code", [form.code]),
        ("name_ar", [form.name_ar]),
        ("name_en", [form.name_en]),
        ("aliases", form.aliases),
    ):
        for value in values:
            owner = others.get(fold(value))
            if owner is not None:
                problems.append(
                    Problem(
                        N_("“%(value)s” is already used by municipality %(code)s."),
                        {"value": shown(value), "code": owner},
                        field=name,
                    )
                )
    return problems


def _columns(form: MunicipalityForm) -> dict[str, str]:
    return {
        "name_ar": form.name_ar,
        "name_en": form.name_en,
        "district_code": form.district_code,
        "district_ar": form.district_ar,
        "district_en": form.district_en,
    }


def _snapshot(form: MunicipalityForm, code: str) -> dict[str, Any]:
    return snapshot(
        code=code,
        name_ar=form.name_ar,
        name_en=form.name_en,
        district_code=form.district_code,
        district_ar=form.district_ar,
        district_en=form.district_en,
        aliases=form.aliases,
    )


async def _store_aliases(session: AsyncSession, municipality_id: int, aliases: list[str]) -> None:
    await session.execute(delete(MA).where(MA.c.municipality_id == municipality_id))
    if aliases:
        await session.execute(
            insert(MA), [{"municipality_id": municipality_id, "alias": a, "key": fold(a)} for a in aliases]
        )


async def create_municipality(session: AsyncSession, form: MunicipalityForm, *, actor: str | Actor) -> int:
    """Add one municipality; raises ``RegisterError`` with the form's problems."""
    form = form.cleaned()
    problems = await _check(session, form, municipality_id=None)
    if problems:
        raise RegisterError(problems)
    form.aliases = distinct_aliases(form.aliases, own=(form.code, form.name_ar, form.name_en))
    new_id = int(
        (
            await session.execute(insert(M).values(code=form.code, **_columns(form)).returning(M.c.id))
        ).scalar_one()
    )
    await _store_aliases(session, new_id, form.aliases)
    audit(
        session,
        actor=actor,
        action="municipality.create",
        target=f"municipality:{new_id}",
        after=_snapshot(form, form.code),
    )
    return new_id


async def update_municipality(
    session: AsyncSession, municipality_id: int, form: MunicipalityForm, *, actor: str | Actor
) -> bool:
    """Change names, district and aliases (the code stays: audiences and files name it).
    Returns whether anything changed; raises ``RegisterError`` with the form's problems."""
    row, aliases = await get_municipality(session, municipality_id)
    form = form.cleaned()
    form.code = row.code
    problems = await _check(session, form, municipality_id=municipality_id)
    if problems:
        raise RegisterError(problems)
    form.aliases = distinct_aliases(form.aliases, own=(row.code, form.name_ar, form.name_en))
    before = _snapshot(MunicipalityForm.of(row, aliases), row.code)
    after = _snapshot(form, row.code)
    if before == after:
        return False
    await session.execute(update(M).where(M.c.id == municipality_id).values(**_columns(form)))
    await _store_aliases(session, municipality_id, form.aliases)
    audit(
        session,
        actor=actor,
        action="municipality.update",
        target=f"municipality:{municipality_id}",
        before=before,
        after=after,
    )
    return True
