"""The municipalities register through the admin pages: the list by district, adding and
editing one, uploading the CSV, and who may do it. Every test runs on PostgreSQL and SQLite."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.municipalities import load_register
from tests.factories import make_citizens
from tests.webapp import StaffClient, logged_in, make_user

SCRIPT = "<script>alert(1)</script>"
AUDIT = models.table(models.AuditLog)
HEADER = "code,name_ar,name_en,district_code,district_ar,district_en,aliases\n"
REGISTER = HEADER + (
    "tripoli-centre,طرابلس المركز,Tripoli Centre,tripoli,طرابلس,Tripoli,Tripoli|Trablus|طرابلس\n"
    "tajoura,تاجوراء,Tajoura,tripoli,طرابلس,Tripoli,Tajura\n"
    "misrata,مصراتة,Misrata,misrata,مصراتة,Misrata,Misurata\n"
)


def client_on(app: FastAPI) -> StaffClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return StaffClient(httpx.AsyncClient(transport=transport, base_url="https://1415.test"))


async def admin_client(web: FastAPI, engine: AsyncEngine, *, language: str = "en") -> StaffClient:
    """An admin logged in the whole way (password, then the TOTP code)."""
    secret = pyotp.random_base32()
    row = await make_user(engine, "admin", totp_secret=secret, language=language)
    client = client_on(web)
    response = await client.login(row.email)
    assert response.headers["location"] == "/login/totp"
    response = await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303, response.text
    assert (await client.get("/admin/municipalities")).status_code == 200  # the full session's token
    return client


@pytest.fixture
async def admin(web: FastAPI, engine: AsyncEngine) -> AsyncIterator[StaffClient]:
    """An admin reading English pages (the tests read the messages)."""
    client = await admin_client(web, engine)
    yield client
    await client.http.aclose()


async def load(engine: AsyncEngine, text: str = REGISTER) -> dict[str, int]:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        report = await load_register(session, text, actor="test")
    assert report.errors == []
    return await ids(engine)


async def ids(engine: AsyncEngine) -> dict[str, int]:
    M = models.table(models.Municipality)
    async with engine.connect() as conn:
        return {code: id_ for code, id_ in await conn.execute(select(M.c.code, M.c.id))}


async def aliases_of(engine: AsyncEngine, municipality_id: int) -> list[str]:
    MA = models.table(models.MunicipalityAlias)
    async with engine.connect() as conn:
        rows = await conn.execute(select(MA.c.alias).where(MA.c.municipality_id == municipality_id))
        return sorted(rows.scalars())


async def audit_rows(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(
            select(models.AuditLog).where(AUDIT.c.action == action).order_by(AUDIT.c.id)
        )
        return list(rows.scalars())


def csv_upload(content: bytes, *, name: str = "register.csv", mode: str = "merge") -> dict[str, Any]:
    return {"files": {"file": (name, content, "text/csv")}, "mode": mode}


async def upload(client: StaffClient, content: bytes, **kw: Any) -> httpx.Response:
    parts = csv_upload(content, **kw)
    return await client.post("/admin/municipalities/upload", {"mode": parts["mode"]}, files=parts["files"])


# --- the list ---------------------------------------------------------------------------


async def test_admin_sees_the_register_by_district_with_citizen_counts_in_one_query(
    admin: StaffClient, engine: AsyncEngine, web: FastAPI
) -> None:
    await load(engine)
    await make_citizens(engine, 3, municipality="tripoli-centre")
    await make_citizens(engine, 2, start=100, municipality="misrata")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    app_engine = web.state.engine.sync_engine  # the app's own pool
    event.listen(app_engine, "before_cursor_execute", count)
    try:
        page = await admin.get("/admin/municipalities")
    finally:
        event.remove(app_engine, "before_cursor_execute", count)
    assert page.status_code == 200
    text = page.text
    for shown in ("طرابلس المركز", "Tripoli Centre", "Trablus", "تاجوراء", "Misurata", "3 municipalities"):
        assert shown in text
    # grouped: Misrata's district first (by code), then Tripoli's
    assert text.index("Misurata") < text.index("Tripoli Centre")
    assert '<td class="num">3</td>' in text and '<td class="num">2</td>' in text
    citizen_queries = [s for s in statements if "FROM citizen" in s]
    assert len(citizen_queries) == 1 and "GROUP BY" in citizen_queries[0]


async def test_the_list_filters_by_district_and_pages_by_fifty(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    rows = "".join(f"m{i:03d},بلدية {i},Town {i},zz,منطقة,Zone,\n" for i in range(55))
    await load(engine, REGISTER + rows)
    only = await admin.get("/admin/municipalities?district=misrata")
    assert only.status_code == 200
    assert "Misurata" in only.text and "Tripoli Centre" not in only.text and "1 municipality" in only.text
    row = '<td class="mono"><a href="/admin/municipalities/'
    first = await admin.get("/admin/municipalities?district=zz")
    assert "Page 1 of 2" in first.text and "page=2&amp;district=zz" in first.text
    assert first.text.count(row) == 50
    second = await admin.get("/admin/municipalities?district=zz&page=2")
    assert "Page 2 of 2" in second.text and second.text.count(row) == 5
    assert "page=1&amp;district=zz" in second.text
    for bad in ("page=abc", "page=-1", "page=99999999999", f"district={'x' * 300}", "district=%3Cscript%3E"):
        response = await admin.get(f"/admin/municipalities?{bad}")
        assert response.status_code == 200, bad
        assert "<script>" not in response.text


async def test_other_roles_get_403_and_anonymous_the_login(web: FastAPI, engine: AsyncEngine) -> None:
    ids_ = await load(engine)
    for role in ("operator", "analyst", "agent", "officer"):
        client, _ = await logged_in(web, engine, role)
        assert (await client.get("/admin/municipalities")).status_code == 403
        assert (await client.get(f"/admin/municipalities/{ids_['misrata']}")).status_code == 403
        created = await client.post("/admin/municipalities", {"code": "x", "name_ar": "س"})
        assert created.status_code == 403
        await client.http.aclose()
    anonymous = client_on(web)
    response = await anonymous.http.get("/admin/municipalities")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    await anonymous.http.aclose()
    assert await ids(engine) == ids_


# --- adding and editing one -------------------------------------------------------------


async def test_admin_adds_a_municipality_audited_and_shown_escaped(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    await load(engine)
    response = await admin.post(
        "/admin/municipalities",
        {
            "code": "souq-al-jumaa",
            "name_ar": "سوق الجمعة",
            "name_en": f"Souq al Jumaa {SCRIPT}",
            "district": "tripoli",
            "aliases": "Suq al Juma\r\nسوق الجمعه\r\n\r\nSouk Joumaa\n",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/municipalities?done=created"
    new_id = (await ids(engine))["souq-al-jumaa"]
    # "سوق الجمعه" folds onto the Arabic name itself: not stored twice
    assert await aliases_of(engine, new_id) == ["Souk Joumaa", "Suq al Juma"]
    page = await admin.get("/admin/municipalities?done=created")
    assert SCRIPT not in page.text and html.escape(SCRIPT, quote=False) in page.text
    assert "The municipality is added to the register." in page.text
    edit = await admin.get(f"/admin/municipalities/{new_id}")
    assert edit.status_code == 200 and SCRIPT not in edit.text
    [row] = [r for r in await audit_rows(engine, "municipality.create") if r.actor != "test"]
    assert row.target == f"municipality:{new_id}" and row.actor.startswith("admin-")
    assert row.after is not None and row.after["district_code"] == "tripoli"
    assert row.after["district_ar"] == "طرابلس" and row.address == "203.0.113.7"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"code": "", "name_ar": "س"}, "Enter a code."),
        ({"code": "two words", "name_ar": "س"}, "The code must be one word"),
        ({"code": "x" * 65, "name_ar": "س"}, "The code must be one word"),
        ({"code": "new", "name_ar": ""}, "Enter the Arabic name."),
        ({"code": "new", "name_ar": "س" * 201}, "At most 200 characters."),
        (
            {"code": "new", "name_ar": "س", "aliases": "TRIPOLI"},
            "“TRIPOLI” is already used by municipality tripoli-centre.",
        ),
        ({"code": "new", "name_ar": "مصراته"}, "“مصراته” is already used by municipality misrata."),
        ({"code": "Misrata", "name_ar": "س"}, "is already used by municipality misrata"),
        ({"code": "new", "name_ar": "س", "district": "nowhere"}, "Choose a district from the list."),
        ({"code": "new", "name_ar": "س", "district": "__new__"}, "Enter the new district"),
        (
            {
                "code": "new",
                "name_ar": "س",
                "district": "__new__",
                "new_district_code": "tripoli",
                "new_district_ar": "x",
            },
            "District tripoli is already named طرابلس.",
        ),
        ({"code": "new", "name_ar": "س", "aliases": "a" * 201}, "is longer than 200 characters"),
        ({"code": "new", "name_ar": "س", "aliases": "\n".join(f"a{i}" for i in range(101))}, "At most 100"),
    ],
)
async def test_a_bad_new_municipality_is_a_form_error_and_nothing_is_written(
    admin: StaffClient, engine: AsyncEngine, form: dict[str, str], message: str
) -> None:
    before = await load(engine)
    response = await admin.post("/admin/municipalities", form)
    assert response.status_code == 400
    assert html.escape(message, quote=False) in response.text
    assert await ids(engine) == before
    assert len(await audit_rows(engine, "municipality.create")) == 3  # the test's own load only


async def test_admin_edits_names_district_and_aliases(admin: StaffClient, engine: AsyncEngine) -> None:
    ids_ = await load(engine)
    tajoura = ids_["tajoura"]
    page = await admin.get(f"/admin/municipalities/{tajoura}")
    assert page.status_code == 200 and "Tajura" in page.text and 'value="tripoli" selected' in page.text
    response = await admin.post(
        f"/admin/municipalities/{tajoura}",
        {
            "code": "ignored",
            "name_ar": "تاجوراء",
            "name_en": "Tajoura",
            "district": "__new__",
            "new_district_code": "tajoura-district",
            "new_district_ar": "منطقة تاجوراء",
            "aliases": "Tajura\nTagiura",
        },
    )
    assert response.status_code == 303 and response.headers["location"].endswith("?done=saved")
    assert (await ids(engine))["tajoura"] == tajoura  # the code stays
    assert await aliases_of(engine, tajoura) == ["Tagiura", "Tajura"]
    [row] = await audit_rows(engine, "municipality.update")
    assert row.before is not None and row.after is not None
    assert row.before["district_code"] == "tripoli" and row.after["district_code"] == "tajoura-district"
    assert row.before["aliases"] == ["Tajura"] and row.after["aliases"] == ["Tagiura", "Tajura"]
    # the same form again: nothing changes, nothing is audited
    again = await admin.post(
        f"/admin/municipalities/{tajoura}",
        {
            "name_ar": "تاجوراء",
            "name_en": "Tajoura",
            "district": "tajoura-district",
            "aliases": "Tajura\nTagiura",
        },
    )
    assert again.headers["location"].endswith("?done=unchanged")
    assert len(await audit_rows(engine, "municipality.update")) == 1


async def test_an_alias_of_another_municipality_is_a_form_error_naming_it(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    ids_ = await load(engine)
    response = await admin.post(
        f"/admin/municipalities/{ids_['tajoura']}",
        {"name_ar": "تاجوراء", "district": "tripoli", "aliases": f"Tajura\ntrablus\n{SCRIPT}\nMisurata"},
    )
    assert response.status_code == 400
    assert "“trablus” is already used by municipality tripoli-centre." in response.text
    assert "“Misurata” is already used by municipality misrata." in response.text
    assert SCRIPT not in response.text and html.escape(SCRIPT, quote=False) in response.text  # shown back
    assert await aliases_of(engine, ids_["tajoura"]) == ["Tajura"]
    assert await audit_rows(engine, "municipality.update") == []


@pytest.mark.parametrize("path", ["999999", "abc", "1e3", "-1", "9" * 40])
async def test_an_unknown_municipality_is_404(admin: StaffClient, engine: AsyncEngine, path: str) -> None:
    await load(engine)
    assert (await admin.get(f"/admin/municipalities/{path}")).status_code == 404
    assert (await admin.post(f"/admin/municipalities/{path}", {"name_ar": "س"})).status_code == 404


async def test_a_scoped_admin_changes_only_their_municipalities(web: FastAPI, engine: AsyncEngine) -> None:
    ids_ = await load(engine)
    secret = pyotp.random_base32()
    row = await make_user(
        engine, "admin", totp_secret=secret, language="en", municipalities=[ids_["misrata"]]
    )
    client = client_on(web)
    await client.login(row.email)
    await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert (await client.get("/admin/municipalities")).status_code == 200
    assert (await client.get(f"/admin/municipalities/{ids_['misrata']}")).status_code == 200
    assert (await client.get(f"/admin/municipalities/{ids_['tajoura']}")).status_code == 403
    edit = await client.post(f"/admin/municipalities/{ids_['tajoura']}", {"name_ar": "س"})
    assert edit.status_code == 403
    assert (await client.post("/admin/municipalities", {"code": "x", "name_ar": "س"})).status_code == 403
    assert (await upload(client, REGISTER.encode())).status_code == 403
    await client.http.aclose()


# --- uploading the register -------------------------------------------------------------


async def test_uploading_a_register_shows_a_summary_and_audits_each_change(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    first = await upload(admin, ("\ufeff" + REGISTER).encode(), name=f"{SCRIPT}.csv")
    assert first.status_code == 200, first.text
    assert "The register is loaded." in first.text
    assert "tripoli-centre, tajoura, misrata" in first.text
    assert SCRIPT not in first.text  # the file name is shown escaped
    assert len(await audit_rows(engine, "municipality.create")) == 3
    changed = REGISTER.replace("Tajoura,tripoli", "Tajoura Town,tripoli")
    second = await upload(admin, changed.encode())
    assert second.status_code == 200
    assert ">Updated<" in second.text and "tajoura" in second.text
    [update] = await audit_rows(engine, "municipality.update")
    assert update.before is not None and update.after is not None
    assert (update.before["name_en"], update.after["name_en"]) == ("Tajoura", "Tajoura Town")


async def test_replace_removes_the_unlisted_and_keeps_the_referenced(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    ids_ = await load(engine, REGISTER + "zliten,زليتن,Zliten,murqub,المرقب,Murqub,\n")
    await make_citizens(engine, 1, municipality="misrata")
    only_tripoli = HEADER + REGISTER.splitlines(keepends=True)[1]
    response = await upload(admin, only_tripoli.encode(), mode="replace")
    assert response.status_code == 200, response.text
    assert "Not in the file, but kept" in response.text
    assert "misrata stays: citizens, tickets or staff accounts point at it." in response.text
    assert set(await ids(engine)) == {"tripoli-centre", "misrata"}
    assert (await ids(engine))["misrata"] == ids_["misrata"]
    deleted = await audit_rows(engine, "municipality.delete")
    assert sorted(r.before["code"] for r in deleted if r.before) == ["tajoura", "zliten"]


async def test_a_register_with_bad_lines_lists_them_and_changes_nothing(
    admin: StaffClient, engine: AsyncEngine
) -> None:
    before = await load(engine)
    bad = HEADER + (
        ",بلا رمز,,,,,\n"  # line 2: no code
        "zliten,زليتن,Zliten,murqub,المرقب,Murqub,\n"
        "zliten,زليتن ٢,,murqub,المرقب,Murqub,\n"  # line 4: duplicate code
        f"khoms,الخمس,Khoms,murqub,,,{SCRIPT}|Trablus\n"  # line 5: no district_ar; Trablus taken
    )
    response = await upload(admin, bad.encode())
    assert response.status_code == 400
    text = response.text
    assert "Nothing was changed" in text
    assert '<td class="num">2</td><td>Missing code.</td>' in text
    assert "Duplicate code “zliten”: line 3 has it already." in text
    assert "District “murqub” has no Arabic name (district_ar)." in text
    assert "“Trablus” names two municipalities" not in text  # tripoli-centre is not in this file:
    assert "“Trablus” already names municipality tripoli-centre, which the file does not list." in text
    assert SCRIPT not in text
    assert await ids(engine) == before
    assert len(await audit_rows(engine, "municipality.load")) == 1  # the test's own load only


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 400, "The file is not a CSV text file."),
        (b"PK\x03\x04\x14\x00\x06\x00", 400, "The file is an Excel workbook"),
        ("code,name_ar\nx,س\n".encode("utf-16"), 400, "The file is UTF-16 text"),
        (b"code,name_ar\nx," + "طرابلس".encode("cp1256") + b"\n", 400, "The file is not UTF-8 text"),
        (b"", 400, "The file is empty"),
        (b"   \n", 400, "The file is empty"),
        (b"hello world, this is not a register\n", 400, "Unknown column"),
        (b"code\nx\n", 400, "The header has no “name_ar” column."),
        (b"code,name_ar\n", 400, "The file lists no municipality."),
        (b"code,name_ar\n" + b"x" * (2 * 1024 * 1024), 413, "The file is larger than 2 MB"),
    ],
)
async def test_a_file_that_is_not_a_register_gets_a_clear_error(
    admin: StaffClient, engine: AsyncEngine, content: bytes, status: int, message: str
) -> None:
    response = await upload(admin, content)
    assert response.status_code == status
    assert html.escape(message, quote=False) in response.text
    assert await ids(engine) == {}


async def test_upload_without_a_file_or_with_a_bad_mode(admin: StaffClient, engine: AsyncEngine) -> None:
    no_file = await admin.post("/admin/municipalities/upload", {"mode": "merge"})
    assert no_file.status_code == 400 and "Choose a CSV file to upload." in no_file.text
    bad_mode = await upload(admin, REGISTER.encode(), mode="<b>wipe</b>")
    assert bad_mode.status_code == 400 and "Choose merge or replace." in bad_mode.text
    assert "<b>wipe</b>" not in bad_mode.text
    assert await ids(engine) == {}


async def test_every_form_without_its_csrf_token_is_refused(admin: StaffClient, engine: AsyncEngine) -> None:
    ids_ = await load(engine)
    target = ids_["tajoura"]
    forms: list[tuple[str, dict[str, Any]]] = [
        ("/admin/municipalities", {"data": {"code": "x", "name_ar": "س"}}),
        (f"/admin/municipalities/{target}", {"data": {"name_ar": "س"}}),
        (
            "/admin/municipalities/upload",
            {"data": {"mode": "replace"}, "files": {"file": ("r.csv", b"code,name_ar\nx,y\n")}},
        ),
    ]
    for path, kw in forms:
        assert (await admin.http.post(path, **kw)).status_code == 403, path
        wrong = {**kw, "data": {**kw["data"], "csrf_token": "forged"}}
        assert (await admin.http.post(path, **wrong)).status_code == 403, path
    assert await ids(engine) == ids_
    async with AsyncSession(engine) as session:
        count = await session.scalar(
            select(func.count()).select_from(AUDIT).where(AUDIT.c.action.startswith("municipality."))
        )
    assert count == 1 + 3  # the test's own load: one row for the load, one per municipality


async def test_the_pages_and_their_errors_speak_arabic(web: FastAPI, engine: AsyncEngine) -> None:
    ids_ = await load(engine)
    client = await admin_client(web, engine, language="ar")
    page = await client.get("/admin/municipalities")
    assert 'dir="rtl"' in page.text and "الشعبية" in page.text and "3 بلديات" in page.text
    taken = await client.post(
        f"/admin/municipalities/{ids_['tajoura']}", {"name_ar": "تاجوراء", "aliases": "Misurata"}
    )
    assert taken.status_code == 400
    assert "الاسم «Misurata» مستعمَل من قبل للبلدية misrata." in taken.text
    bad = await upload(client, (HEADER + "x,,,,,,\n").encode())
    assert (
        bad.status_code == 400
        and "الاسم العربي (name_ar) غير موجود." in bad.text
        and "مشكلة واحدة" in bad.text
    )
    await client.http.aclose()
