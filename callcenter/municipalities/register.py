"""Loading the municipalities register from CSV: every row checked first, then all of it
written in the caller's transaction, or nothing.

Usage::

    report = await load_register(session, text, actor=actor, mode="merge")
    if report.errors: ...  # per line; nothing was written

(The file's format is in ``csvfile``.) A row is matched to a municipality already registered
by its code; a row with a new code takes over the municipalities that an import created for
its names (those without a district): the oldest keeps its id, so citizens, tickets and staff
accounts keep pointing at it, and the others are merged into it.

``merge`` updates the municipalities the file lists and keeps what the register knew
besides: their other aliases, their former names (as aliases), the municipalities the file
does not list. ``replace`` makes the register the file: the listed municipalities get
exactly the file's aliases, and the others are removed, unless something references them
(they are then kept and reported). Either way a name may designate one municipality only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.citizens.fields import fold
from callcenter.messages import N_
from callcenter.municipalities.common import (
    ALIASES_PER_MUNICIPALITY,
    Problem,
    RegisterError,
    distinct_aliases,
    keys_of,
    snapshot,
)
from callcenter.municipalities.csvfile import FileRow, check_file, parse_register, shown
from callcenter.municipalities.merge import rename_in_audiences, repoint

Mode = Literal["merge", "replace"]
MODES: Final[tuple[Mode, ...]] = ("merge", "replace")
STARTER: Final = Path(__file__).resolve().parent.parent / "samples" / "municipalities.csv"

M = models.table(models.Municipality)
MA = models.table(models.MunicipalityAlias)


@dataclass(slots=True)
class Existing:
    """A municipality as the database holds it."""

    id: int
    code: str
    name_ar: str
    name_en: str
    district_code: str
    district_ar: str
    district_en: str
    aliases: list[str] = field(default_factory=list)

    def folded(self) -> list[str]:
        return keys_of(self.code, self.name_ar, self.name_en, self.aliases)

    def snapshot(self) -> dict[str, Any]:
        return snapshot(
            code=self.code,
            name_ar=self.name_ar,
            name_en=self.name_en,
            district_code=self.district_code,
            district_ar=self.district_ar,
            district_en=self.district_en,
            aliases=self.aliases,
        )


@dataclass(slots=True)
class LoadReport:
    mode: Mode
    rows: int = 0
    created: list[str] = field(default_factory=list)  # codes
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # duplicates merged into a listed one
    #: replace: the municipalities absent from the file that stay, and why
    kept: list[Problem] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# -- the database side ----------------------------------------------------------------------


async def existing_municipalities(session: AsyncSession) -> dict[int, Existing]:
    found: dict[int, Existing] = {}
    result = await session.execute(
        select(
            M.c.id, M.c.code, M.c.name_ar, M.c.name_en, M.c.district_code, M.c.district_ar, M.c.district_en
        ).order_by(M.c.id)
    )
    for row in result:
        found[row.id] = Existing(*row)
    aliases = await session.execute(select(MA.c.municipality_id, MA.c.alias).order_by(MA.c.id))
    for municipality_id, alias in aliases:
        if municipality_id in found:
            found[municipality_id].aliases.append(alias)
    return found


async def references(session: AsyncSession, ids: Iterable[int]) -> dict[int, int]:
    """How many citizens, tickets and staff scopes point at each of ``ids`` (one GROUP BY each)."""
    wanted = list(ids)
    counts: dict[int, int] = defaultdict(int)
    if not wanted:
        return counts
    for model in (models.Citizen, models.Ticket, models.UserMunicipality):
        t = models.table(model)
        column = t.c.municipality_id
        result = await session.execute(
            select(column, func.count()).where(column.in_(wanted)).group_by(column)
        )
        for municipality_id, n in result:
            counts[municipality_id] += int(n)
    return counts


@dataclass(slots=True)
class _Plan:
    """What the load will write, decided before anything is."""

    targets: dict[int, int | None] = field(default_factory=dict)  # row line -> existing id
    merged: dict[int, list[int]] = field(default_factory=dict)  # adopted id -> its duplicates
    aliases: dict[int, list[str]] = field(default_factory=dict)  # row line -> aliases to store
    removed: list[Existing] = field(default_factory=list)
    kept: list[Existing] = field(default_factory=list)


def _match(
    rows: list[FileRow], existing: dict[int, Existing], *, present: frozenset[str], mode: Mode,
    refs: dict[int, int] | None,
) -> tuple[_Plan, list[Problem]]:  # fmt: skip
    plan = _Plan()
    problems: list[Problem] = []
    by_code = {fold(m.code): m.id for m in existing.values()}
    owners: dict[str, set[int]] = defaultdict(set)
    for m in existing.values():
        for key in m.folded():
            owners[key].add(m.id)
    taken: dict[int, FileRow] = {}
    # First the codes: a row keeps the municipality with its code whatever its names say.
    for row in rows:
        target = by_code.get(fold(row.code))
        plan.targets[row.line] = target
        if target is not None:
            taken[target] = row
    # Then a row with a new code takes over what imports created for its names: municipalities
    # without a district. One with a district belongs to the register: its names are a conflict.
    for row in rows:
        if plan.targets[row.line] is not None:
            continue
        keys = keys_of(row.code, row.name_ar, row.name_en, row.aliases)
        hits = sorted(
            {i for key in keys for i in owners.get(key, ()) if not existing[i].district_code} - taken.keys()
        )
        if hits:
            plan.targets[row.line] = hits[0]
            plan.merged[hits[0]] = hits[1:]
            for i in hits:
                taken[i] = row
    unlisted = [m for i, m in existing.items() if i not in taken]
    if mode == "replace":
        counts = refs or {}
        plan.kept = [m for m in unlisted if counts.get(m.id, 0) > 0]
        plan.removed = [m for m in unlisted if counts.get(m.id, 0) == 0]
    else:
        plan.kept = unlisted
    # The municipalities that stay outside the file keep their names: a row may not take one.
    staying: dict[str, Existing] = {}
    for m in plan.kept:
        for key in m.folded():
            staying.setdefault(key, m)
    assigned: dict[str, int] = {}  # folded key -> the line of the row that has it
    for row in rows:
        for value in (row.code, row.name_ar, row.name_en, *row.aliases):
            key = fold(value)
            if key:
                assigned.setdefault(key, row.line)
            other = staying.get(key) if key else None
            if other is None:
                continue
            if mode == "replace":
                message = N_(
                    "“%(value)s” names municipality %(existing)s, which is not in the file but cannot be "
                    "removed: citizens, tickets or staff accounts point at it."
                )
            else:
                message = N_(
                    "“%(value)s” already names municipality %(existing)s, which the file does not list."
                )
            problems.append(Problem(message, {"value": shown(value), "existing": other.code}, line=row.line))
    # Aliases to store: the file's, and what the register knew (its other aliases; in merge
    # mode its former names too), unless the file or a municipality outside it now has that name.
    kept: dict[int, list[str]] = defaultdict(list)
    for tier in ("aliases", "names"):
        for row in rows:
            target = plan.targets[row.line]
            old = existing.get(target) if target is not None else None
            if old is None:
                continue
            family = [old, *(existing[i] for i in plan.merged.get(old.id, []))]
            if tier == "aliases":
                if mode == "replace" and "aliases" in present:
                    continue
                values = [alias for m in family for alias in m.aliases]
            elif mode == "merge":
                values = [name for m in family for name in (m.code, m.name_ar, m.name_en)]
            else:
                continue
            for value in values:
                key = fold(value)
                if key and key not in staying and assigned.setdefault(key, row.line) == row.line:
                    kept[row.line].append(value)
    for row in rows:
        target = plan.targets[row.line]
        old = existing.get(target) if target is not None else None
        wanted = row.aliases if "aliases" in present or old is None else []
        plan.aliases[row.line] = distinct_aliases(
            [*wanted, *kept[row.line]], own=(row.code, row.name_ar, _value(row, old, "name_en", present))
        )[:ALIASES_PER_MUNICIPALITY]
    return plan, problems


def _value(row: FileRow, old: Existing | None, column: str, present: frozenset[str]) -> str:
    """The row's cell, or for a column the file lacks, what the database has."""
    if column in present or old is None:
        return str(getattr(row, column))
    return str(getattr(old, column))


async def load_register(
    session: AsyncSession, csv_text: str, *, actor: str | Actor, mode: Mode = "merge"
) -> LoadReport:
    """Check the whole file, then write it in ``session``'s transaction (or write nothing and
    return the errors). Each municipality created, updated or removed is audited."""
    if mode not in MODES:
        raise ValueError(f"mode must be merge or replace, not {mode!r}")
    report = LoadReport(mode=mode)
    present, rows, problems = parse_register(csv_text)
    report.rows = len(rows)
    problems += check_file(rows)
    existing = await existing_municipalities(session)
    refs = await references(session, existing) if mode == "replace" else None
    plan, matching = _match(rows, existing, present=present, mode=mode, refs=refs)
    problems += matching
    if not rows and not problems:
        problems.append(Problem(N_("The file lists no municipality."), line=2))
    if problems:
        report.errors = sorted(problems, key=lambda p: p.line or 0)
        return report
    if mode == "replace":
        report.kept = [
            Problem(
                N_("%(code)s stays: citizens, tickets or staff accounts point at it."),
                {"code": m.code},
            )
            for m in plan.kept
        ]
    await _apply(session, rows, existing, plan, present=present, actor=actor, report=report)
    audit(
        session,
        actor=actor,
        action="municipality.load",
        target="municipality_register",
        mode=mode,
        rows=report.rows,
        created=len(report.created),
        updated=len(report.updated),
        removed=len(report.removed),
        merged=len(report.merged),
        kept=len(report.kept),
    )
    return report


def _after(row: FileRow, old: Existing | None, aliases: list[str], present: frozenset[str]) -> Existing:
    return Existing(
        id=old.id if old is not None else 0,
        code=row.code,
        name_ar=row.name_ar,
        name_en=_value(row, old, "name_en", present),
        district_code=_value(row, old, "district_code", present),
        district_ar=_value(row, old, "district_ar", present),
        district_en=_value(row, old, "district_en", present),
        aliases=aliases,
    )


def _columns(m: Existing) -> dict[str, str]:
    return {
        "code": m.code,
        "name_ar": m.name_ar,
        "name_en": m.name_en,
        "district_code": m.district_code,
        "district_ar": m.district_ar,
        "district_en": m.district_en,
    }


async def _apply(
    session: AsyncSession, rows: list[FileRow], existing: dict[int, Existing], plan: _Plan, *,
    present: frozenset[str], actor: str | Actor, report: LoadReport,
) -> None:  # fmt: skip
    changed: list[tuple[Existing, Existing]] = []
    new: list[Existing] = []
    renamed: dict[str, str] = {}  # campaign audiences name municipalities by code
    for row in rows:
        target = plan.targets[row.line]
        old = existing.get(target) if target is not None else None
        after = _after(row, old, plan.aliases[row.line], present)
        if old is None:
            new.append(after)
            continue
        dups = [existing[i] for i in plan.merged.get(old.id, [])]
        renamed |= {m.code: after.code for m in [old, *dups]}
        if after.snapshot() != old.snapshot() or dups:
            changed.append((old, after))
        else:
            report.unchanged += 1
    # Free the alias keys and codes first, so one municipality can take over another's alias.
    freed = [old.id for old, _ in changed] + [m.id for m in plan.removed]
    if freed:
        await session.execute(delete(MA).where(MA.c.municipality_id.in_(freed)))
    for survivor, dup_ids in plan.merged.items():
        if not dup_ids:
            continue
        await repoint(session, survivor, dup_ids)
        audit(
            session,
            actor=actor,
            action="municipality.merge",
            target=f"municipality:{survivor}",
            before={"merged": [{"id": i} | existing[i].snapshot() for i in dup_ids]},
        )
        report.merged += [existing[i].code for i in dup_ids]
    if plan.removed:
        await session.execute(delete(M).where(M.c.id.in_([m.id for m in plan.removed])))
    for m in plan.removed:
        audit(
            session,
            actor=actor,
            action="municipality.delete",
            target=f"municipality:{m.id}",
            before=m.snapshot(),
        )
        report.removed.append(m.code)
    for old, after in changed:
        await session.execute(update(M).where(M.c.id == old.id).values(**_columns(after)))
    for m in new:
        m.id = int((await session.execute(insert(M).values(**_columns(m)).returning(M.c.id))).scalar_one())
    aliases = [
        {"municipality_id": m.id, "alias": alias, "key": fold(alias)}
        for m in [after for _, after in changed] + new
        for alias in m.aliases
    ]
    if aliases:
        await session.execute(insert(MA), aliases)
    await rename_in_audiences(session, renamed)
    for old, after in changed:
        audit(
            session,
            actor=actor,
            action="municipality.update",
            target=f"municipality:{old.id}",
            before=old.snapshot(),
            after=after.snapshot(),
        )
        report.updated.append(after.code)
    for m in new:
        audit(
            session,
            actor=actor,
            action="municipality.create",
            target=f"municipality:{m.id}",
            after=m.snapshot(),
        )
        report.created.append(m.code)


async def ensure_starter_register(engine: AsyncEngine) -> int:
    """Load the starter register (Libya's 22 districts and their main municipalities) when the
    register is empty, so a new installation can import citizens at once. Returns how many
    municipalities were created (0 when the register had some already)."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        if await session.scalar(select(func.count()).select_from(M)):
            return 0
        report = await load_register(session, STARTER.read_text(encoding="utf-8"), actor="system")
        if report.errors:  # pragma: no cover - tests/unit/test_municipality_register.py keeps it clean
            raise RegisterError(report.errors)
        return len(report.created)
