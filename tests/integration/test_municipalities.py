"""The municipalities register in the database: loading it from CSV (merge and replace, every
kind of bad file), taking over what imports created, merging duplicates, the starter register,
and migration 0003. Each test runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import DateTime, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.db import make_engine
from callcenter.migrate import upgrade
from callcenter.models import utcnow
from callcenter.municipalities import (
    LoadReport,
    Mode,
    ensure_starter_register,
    load_index,
    load_register,
    merge_municipalities,
)
from callcenter.settings import Settings
from tests.conftest import PG_ADMIN
from tests.factories import make_citizens

HEADER = "code,name_ar,name_en,district_code,district_ar,district_en,aliases\n"
TRIPOLI = "tripoli-centre,طرابلس المركز,Tripoli Centre,tripoli,طرابلس,Tripoli,Tripoli|Trablus|طرابلس\n"
TAJOURA = "tajoura,تاجوراء,Tajoura,tripoli,طرابلس,Tripoli,Tajura\n"
MISRATA = "misrata,مصراتة,Misrata,misrata,مصراتة,Misrata,Misurata\n"
REGISTER = HEADER + TRIPOLI + TAJOURA + MISRATA
M = models.table(models.Municipality)
MA = models.table(models.MunicipalityAlias)
AUDIT = models.table(models.AuditLog)


async def load(engine: AsyncEngine, body: str, *, mode: Mode = "merge", actor: str = "test") -> LoadReport:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        return await load_register(session, body, actor=actor, mode=mode)


async def register_rows(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """code -> the row's columns, with its id and aliases."""
    async with engine.connect() as conn:
        rows = {r.code: dict(r._mapping) for r in await conn.execute(select(M))}
        by_id = {r["id"]: r for r in rows.values()}
        for r in rows.values():
            r["aliases"] = []
        for municipality_id, alias in await conn.execute(select(MA.c.municipality_id, MA.c.alias)):
            by_id[municipality_id]["aliases"].append(alias)
        for r in rows.values():
            r["aliases"].sort()
        return rows


async def audit_rows(engine: AsyncEngine, prefix: str = "municipality.") -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(models.AuditLog).where(AUDIT.c.action.startswith(prefix)).order_by(AUDIT.c.id)
        )
        return list(rows.scalars())


async def citizens_of(engine: AsyncEngine) -> dict[str, str | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT c.phone, m.code FROM citizen c LEFT JOIN municipality m ON m.id = c.municipality_id")
        )
        return {phone: code for phone, code in rows}


async def add_municipality(engine: AsyncEngine, code: str, name_ar: str, name_en: str = "") -> int:
    async with engine.begin() as conn:
        return int(
            (
                await conn.execute(
                    M.insert().values(code=code, name_ar=name_ar, name_en=name_en).returning(M.c.id)
                )
            ).scalar_one()
        )


# --- a good file ------------------------------------------------------------------------


async def test_a_good_register_is_loaded_with_aliases_and_audited(engine: AsyncEngine) -> None:
    report = await load(engine, "\ufeff" + REGISTER.replace("\n", "\r\n"))
    assert report.errors == []
    assert (report.rows, report.created, report.updated, report.removed) == (
        3,
        ["tripoli-centre", "tajoura", "misrata"],
        [],
        [],
    )
    rows = await register_rows(engine)
    assert rows["tripoli-centre"]["aliases"] == ["Trablus", "Tripoli", "طرابلس"]
    assert rows["misrata"]["district_ar"] == "مصراتة" and rows["tajoura"]["district_en"] == "Tripoli"
    audits = await audit_rows(engine)
    assert [a.action for a in audits] == ["municipality.create"] * 3 + ["municipality.load"]
    created = audits[0]
    assert created.actor == "test" and created.before is None and created.after is not None
    assert created.target == f"municipality:{rows['tripoli-centre']['id']}"
    assert created.after["aliases"] == ["Trablus", "Tripoli", "طرابلس"]
    assert audits[-1].details["created"] == 3


async def test_optional_columns_may_be_left_out_and_cells_are_trimmed(engine: AsyncEngine) -> None:
    report = await load(engine, "name_ar ; CODE\n  زليتن  ;zliten\n\n;\n")
    assert report.errors == [] and report.created == ["zliten"]
    rows = await register_rows(engine)
    assert rows["zliten"]["name_ar"] == "زليتن" and rows["zliten"]["district_code"] == ""


async def test_merge_keeps_ids_updates_and_keeps_former_names_as_aliases(engine: AsyncEngine) -> None:
    await load(engine, REGISTER)
    before = await register_rows(engine)
    await make_citizens(engine, 2, municipality="tajoura")
    changed = REGISTER.replace("tajoura,تاجوراء,Tajoura,", "tajoura,تاجوراء الكبرى,Tajoura Town,").replace(
        MISRATA, "misrata,مصراتة,Misrata,misrata,مصراتة,Misrata,Misurata|Misrata City\n"
    )
    report = await load(engine, changed + "zliten,زليتن,Zliten,murqub,المرقب,Murqub,\n")
    assert report.errors == []
    assert (report.created, sorted(report.updated), report.unchanged) == (
        ["zliten"],
        ["misrata", "tajoura"],
        1,
    )
    after = await register_rows(engine)
    for code in ("tripoli-centre", "tajoura", "misrata"):
        assert after[code]["id"] == before[code]["id"]
    assert after["tajoura"]["name_en"] == "Tajoura Town"
    # the former Arabic name stays an alias; the former Latin one is the code already
    assert after["tajoura"]["aliases"] == ["Tajura", "تاجوراء"]
    assert after["misrata"]["aliases"] == ["Misrata City", "Misurata"]
    assert set((await citizens_of(engine)).values()) == {"tajoura"}
    [update] = [
        a
        for a in await audit_rows(engine, "municipality.update")
        if a.target.endswith(str(after["tajoura"]["id"]))
    ]
    assert update.before is not None and update.after is not None
    assert (update.before["name_en"], update.after["name_en"]) == ("Tajoura", "Tajoura Town")
    # the same file again changes nothing and audits no update
    again = await load(engine, changed + "zliten,زليتن,Zliten,murqub,المرقب,Murqub,\n")
    assert (again.created, again.updated, again.unchanged) == ([], [], 4)


async def test_merge_keeps_the_unlisted_and_replace_removes_them_unless_referenced(
    engine: AsyncEngine,
) -> None:
    await load(engine, REGISTER + "zliten,زليتن,Zliten,murqub,المرقب,Murqub,\n")
    await make_citizens(engine, 1, municipality="misrata")
    merged = await load(engine, HEADER + TRIPOLI)
    assert merged.removed == [] and len(await register_rows(engine)) == 4
    report = await load(engine, HEADER + TRIPOLI.replace("|Trablus", ""), mode="replace")
    assert report.errors == []
    assert sorted(report.removed) == ["tajoura", "zliten"]
    assert [p.text() for p in report.kept] == [
        "misrata stays: citizens, tickets or staff accounts point at it."
    ]
    rows = await register_rows(engine)
    assert set(rows) == {"tripoli-centre", "misrata"}
    assert rows["tripoli-centre"]["aliases"] == ["Tripoli", "طرابلس"]  # replace: exactly the file's
    deleted = await audit_rows(engine, "municipality.delete")
    assert sorted(a.before["code"] for a in deleted if a.before) == ["tajoura", "zliten"]
    assert all(a.after is None for a in deleted)


async def test_replace_keeps_municipalities_staff_or_tickets_point_at(engine: AsyncEngine) -> None:
    await load(engine, REGISTER)
    ids = {code: row["id"] for code, row in (await register_rows(engine)).items()}
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add(models.Ticket(kind="service", municipality_id=ids["tajoura"]))
        user = models.User(email=f"{uuid.uuid4().hex[:8]}@t.ly", role="officer")
        session.add(user)
        await session.flush()
        assert user.id is not None
        session.add(models.UserMunicipality(user_id=user.id, municipality_id=ids["misrata"]))
    report = await load(engine, HEADER + TRIPOLI, mode="replace")
    assert report.errors == [] and report.removed == []
    assert sorted(p.params["code"] for p in report.kept) == ["misrata", "tajoura"]


async def test_a_register_row_takes_over_what_an_import_created(engine: AsyncEngine) -> None:
    """Before the register, imports made a municipality per spelling; the register row that
    names them keeps the oldest (and its citizens), merges the others into it, renames audiences."""
    first = await add_municipality(engine, "طرابلس", "طرابلس")
    await add_municipality(engine, "trablus", "Trablus", "Trablus")
    await make_citizens(engine, 1, municipality="طرابلس")
    await make_citizens(engine, 1, start=10, municipality="trablus")
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        inquiry = models.Inquiry(slug="i", title_ar="س")
        session.add(inquiry)
        await session.flush()
        session.add(
            models.Campaign(inquiry_id=inquiry.id or 0, audience={"municipalities": ["trablus", "طرابلس"]})
        )
    report = await load(engine, REGISTER)
    assert report.errors == []
    assert report.created == ["tajoura", "misrata"] and report.updated == ["tripoli-centre"]
    assert report.merged == ["trablus"]
    rows = await register_rows(engine)
    assert rows["tripoli-centre"]["id"] == first and "trablus" not in rows and len(rows) == 3
    assert set(rows["tripoli-centre"]["aliases"]) == {"Trablus", "Tripoli", "طرابلس"}
    assert set((await citizens_of(engine)).values()) == {"tripoli-centre"}
    async with AsyncSession(engine) as session:
        audience = (await session.execute(select(models.Campaign.audience))).scalar_one()  # type: ignore[call-overload]
    assert audience == {"municipalities": ["tripoli-centre"]}
    [merge] = await audit_rows(engine, "municipality.merge")
    assert merge.target == f"municipality:{first}" and merge.before is not None
    assert merge.before["merged"][0]["code"] == "trablus"


async def test_merge_municipalities_moves_names_and_references(engine: AsyncEngine) -> None:
    await load(engine, REGISTER)
    dup = await add_municipality(engine, "مصراته-2", "مصراته الجديدة", "Misrata New")
    await make_citizens(engine, 2, municipality="مصراته-2")
    survivor = (await register_rows(engine))["misrata"]["id"]
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        await merge_municipalities(session, survivor, [dup], actor="test")
    rows = await register_rows(engine)
    assert "مصراته-2" not in rows
    assert rows["misrata"]["aliases"] == ["Misrata New", "Misurata", "مصراته الجديدة", "مصراته-2"]
    assert set((await citizens_of(engine)).values()) == {"misrata"}
    assert len(await audit_rows(engine, "municipality.merge")) == 1


# --- bad files: each error, and nothing written ----------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (HEADER + ",بلا رمز,,,,,\n", 2, "Missing code."),
        (HEADER + "x y,س,,,,,\n", 2, "Code “x y” must be one word: letters, digits and dashes."),
        (HEADER + f"{'x' * 65},س,,,,,\n", 2, "is longer than 64 characters"),
        (HEADER + "x,,,,,,\n", 2, "Missing Arabic name (name_ar)."),
        (HEADER + f"x,{'س' * 201},,,,,\n", 2, "name_ar is longer than 200 characters."),
        (
            HEADER + TAJOURA + "TAJOURA,تاجوراء 2,,,,,\n",
            3,
            "Duplicate code “TAJOURA”: line 2 has it already.",
        ),
        (
            HEADER + TRIPOLI + "souq,سوق الجمعة,,tripoli,طرابلس,Tripoli,trablus\n",
            3,
            "“trablus” names two municipalities: tripoli-centre (line 2) and souq.",
        ),
        (HEADER + "x,س,,,المرقب,,\n", 2, "District names without a district code."),
        (HEADER + "x,س,,murqub,,Murqub,\n", 2, "District “murqub” has no Arabic name (district_ar)."),
        (HEADER + "x,س,,two words,س,,\n", 2, "District code “two words” must be one word"),
        (
            HEADER + TAJOURA + "x,س,,tripoli,طرابلس الكبرى,,\n",
            3,
            "District “tripoli” is named differently on line 2.",
        ),
        (HEADER + "x,س,,,,," + "|".join(f"a{i}" for i in range(101)) + "\n", 2, "More than 100 aliases."),
        (HEADER + "x,س,,,,," + "a" * 201 + "\n", 2, "is longer than 200 characters."),
        (HEADER + "x,س\n", 2, "Expected 7 fields, found 2."),
        ("code,name_ar,colour\nx,س,red\n", 1, "Unknown column “colour” in the header"),
        ("code,code,name_ar\nx,x,س\n", 1, "Column “code” appears twice."),
        ("name_ar\nس\n", 1, "The header has no “code” column."),
        ("", 1, "The file is empty: the first line must be the header."),
        (HEADER, 2, "The file lists no municipality."),
        (HEADER + 'x,"unclosed\n', 2, "Expected 7 fields"),
    ],
)
async def test_a_bad_file_is_reported_by_line_and_writes_nothing(
    engine: AsyncEngine, body: str, line: int, message: str
) -> None:
    await load(engine, HEADER + MISRATA)
    before, audits = await register_rows(engine), len(await audit_rows(engine))
    report = await load(engine, body)
    assert [(p.line, message in p.text()) for p in report.errors][:1] == [(line, True)], report.errors
    assert report.created == report.updated == report.removed == []
    assert await register_rows(engine) == before
    assert len(await audit_rows(engine)) == audits


async def test_every_bad_line_is_reported_at_once(engine: AsyncEngine) -> None:
    body = HEADER + ",a,,,,,\n" + "b,,,,,,\n" + TAJOURA + TAJOURA
    report = await load(engine, body)
    assert [p.line for p in report.errors] == [2, 3, 5]
    assert await register_rows(engine) == {}


async def test_names_of_municipalities_outside_the_file_cannot_be_taken(engine: AsyncEngine) -> None:
    await load(engine, REGISTER)
    taking = HEADER + "souq,سوق الجمعة,Tripoli Centre,tripoli,طرابلس,Tripoli,Misurata\n"
    merged = await load(engine, taking)
    assert [p.text() for p in merged.errors] == [
        "“Tripoli Centre” already names municipality tripoli-centre, which the file does not list.",
        "“Misurata” already names municipality misrata, which the file does not list.",
    ]
    await make_citizens(engine, 1, municipality="misrata")
    replaced = await load(engine, taking, mode="replace")
    # tripoli-centre could be removed; misrata cannot, so its alias stays its own
    [error] = replaced.errors
    assert error.text().startswith(
        "“Misurata” names municipality misrata, which is not in the file but cannot"
    )
    assert len(await register_rows(engine)) == 3


async def test_the_mode_must_be_merge_or_replace(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        with pytest.raises(ValueError, match="merge or replace"):
            await load_register(session, REGISTER, actor="test", mode="wipe")  # type: ignore[arg-type]


# --- the starter register ---------------------------------------------------------------


async def test_the_starter_register_loads_once_into_an_empty_register(engine: AsyncEngine) -> None:
    created = await ensure_starter_register(engine)
    assert 60 <= created <= 100
    assert await ensure_starter_register(engine) == 0
    async with AsyncSession(engine) as session:
        index = await load_index(session)
        districts = await session.scalar(select(func.count(func.distinct(M.c.district_code))))
    assert districts == 22
    tripoli = index.resolve("tripoli-centre")
    assert tripoli is not None
    assert index.resolve("Tripoli") == index.resolve("طرابلس") == index.resolve("طرابلس ") == tripoli
    assert index.resolve("بنغازي") is not None and index.resolve("تاجورا") == index.resolve("Tajoura")
    [load_row] = await audit_rows(engine, "municipality.load")
    assert load_row.actor == "system"


async def test_the_starter_register_is_not_loaded_over_an_existing_one(engine: AsyncEngine) -> None:
    await add_municipality(engine, "home", "بلدتي")
    assert await ensure_starter_register(engine) == 0
    assert list(await register_rows(engine)) == ["home"]


# --- migration 0003 ---------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
async def at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh database migrated to revision 0002 only."""
    name = f"cc_mig_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    engine = make_engine(Settings(env="test", database_url=url, data_dir=tmp_path))
    await upgrade(engine, "0002")
    yield engine
    await engine.dispose()
    if request.param == "postgresql":
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _sql(engine: AsyncEngine, statement: str, **params: Any) -> Any:
    query = text(statement)
    if "now" in params:
        query = query.bindparams(bindparam("now", type_=DateTime(timezone=True)))
    async with engine.begin() as conn:
        result = await conn.execute(query, params)
        return result.scalar() if result.returns_rows else None


async def test_migration_0003_merges_the_duplicates_an_import_created(at_0002: AsyncEngine) -> None:
    db, now = at_0002, utcnow()

    async def municipality(code: str, name_ar: str, name_en: str = "") -> int:
        return int(
            await _sql(
                db,
                "INSERT INTO municipality (code, name_ar, name_en, district_code, district_ar, district_en)"
                " VALUES (:code, :ar, :en, '', '', '') RETURNING id",
                code=code,
                ar=name_ar,
                en=name_en,
            )
        )

    tripoli = await municipality("tripoli", "طرابلس", "Tripoli")
    spaced = await municipality("طرابلس", "طرابلس ")  # same Arabic name, trailing space
    upper = await municipality("TRIPOLI", "TRIPOLI", "TRIPOLI")  # the code folds onto tripoli
    misrata = await municipality("misrata", "مصراتة", "Misrata")
    marbuta = await municipality("مصراته", "مصراته")  # ta marbuta written as ha
    chained = await municipality("x7", "مصراته الجديدة", "misrata")  # the same Latin name
    souq = await municipality("souq", "سوق الجمعة")
    await _sql(
        db,
        "INSERT INTO municipality_alias (municipality_id, alias, key) VALUES (:m, 'Misurata', 'misurata')",
        m=misrata,
    )
    for i, target in enumerate([spaced, upper, marbuta, chained, souq, None]):
        await _sql(
            db,
            "INSERT INTO citizen (phone, municipality_id, language, created_at) VALUES (:p, :m, 'ar', :now)",
            p=f"+21891000000{i}",
            m=target,
            now=now,
        )
    await _sql(
        db,
        "INSERT INTO ticket (kind, phone, municipality_id, status, callback, notes, created_at, updated_at)"
        " VALUES ('service', '', :m, 'open', false, '', :now, :now)",
        m=upper,
        now=now,
    )
    users = []
    for email in ("a@t.ly", "b@t.ly"):
        users.append(
            await _sql(
                db,
                "INSERT INTO staff_user (email, name, role, language, created_at)"
                " VALUES (:e, '', 'officer', 'ar', :now) RETURNING id",
                e=email,
                now=now,
            )
        )
    for user, municipality_id in [
        (users[0], tripoli),
        (users[0], spaced),
        (users[1], spaced),
        (users[1], upper),
    ]:
        await _sql(
            db,
            "INSERT INTO user_municipality (user_id, municipality_id) VALUES (:u, :m)",
            u=user,
            m=municipality_id,
        )
    inquiry = await _sql(
        db,
        "INSERT INTO inquiry (slug, title_ar, title_en, intro_ar, intro_en, thanks_ar, thanks_en, status,"
        " max_contacts, created_at, updated_at) VALUES ('i', 'س', '', '', '', '', '', 'draft', 3, :now, :now)"
        " RETURNING id",
        now=now,
    )
    await _sql(
        db,
        "INSERT INTO campaign (inquiry_id, channel, gateway, audience, status, max_attempts, planned,"
        " created_at) VALUES (:i, 'sms', 'loopback', :a, 'draft', 4, 0, :now)",
        i=inquiry,
        a='{"municipalities": ["TRIPOLI", "طرابلس", "souq"], "languages": ["ar"]}',
        now=now,
    )

    await upgrade(db)

    async with db.connect() as conn:
        left = {r.id: r.code for r in await conn.execute(text("SELECT id, code FROM municipality"))}
        assert left == {tripoli: "tripoli", misrata: "misrata", souq: "souq"}
        citizens: dict[str, int | None] = {
            phone: municipality_id
            for phone, municipality_id in await conn.execute(
                text("SELECT phone, municipality_id FROM citizen")
            )
        }
        assert [citizens[f"+21891000000{i}"] for i in range(6)] == [
            tripoli,
            tripoli,
            misrata,
            misrata,
            souq,
            None,
        ]
        assert (await conn.execute(text("SELECT municipality_id FROM ticket"))).scalar_one() == tripoli
        scopes = sorted(
            (await conn.execute(text("SELECT user_id, municipality_id FROM user_municipality"))).all()
        )
        assert scopes == sorted([(users[0], tripoli), (users[1], tripoli)])
        aliases = sorted(
            (await conn.execute(text("SELECT municipality_id, alias, key FROM municipality_alias"))).all()
        )
        assert aliases == sorted(
            [
                (misrata, "Misurata", "misurata"),
                (misrata, "x7", "x7"),
                (misrata, "مصراته الجديدة", "مصراته الجديده"),
            ]
        )
        raw = (await conn.execute(text("SELECT audience FROM campaign"))).scalar_one()
        audience = raw if isinstance(raw, dict) else json.loads(raw)
        assert audience == {"municipalities": ["tripoli", "souq"], "languages": ["ar"]}
        merges = (
            await conn.execute(text("SELECT actor, target FROM auditlog WHERE action = 'municipality.merge'"))
        ).all()
        assert sorted(merges) == sorted(
            [("migration", f"municipality:{tripoli}"), ("migration", f"municipality:{misrata}")]
        )
    # what the migration left, the register and the importer agree with
    async with AsyncSession(db) as session:
        index = await load_index(session)
    assert index.resolve("مصراته الجديدة") == index.resolve("MISRATA") == misrata


async def test_migration_0003_leaves_a_clean_register_alone(at_0002: AsyncEngine) -> None:
    await _sql(
        at_0002,
        "INSERT INTO municipality (code, name_ar, name_en, district_code, district_ar, district_en)"
        " VALUES ('a', 'أ', 'A', '', '', ''), ('b', 'ب', 'B', '', '', '')",
    )
    await upgrade(at_0002)
    async with at_0002.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM municipality"))).scalar_one() == 2
        assert (await conn.execute(text("SELECT count(*) FROM auditlog"))).scalar_one() == 0
