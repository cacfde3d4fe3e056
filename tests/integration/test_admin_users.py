"""Administration of staff accounts through the pages: inviting, editing, disabling, new
links, and who may do it. Every test runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from tests.webapp import PASSWORD, StaffClient, logged_in, make_user, staff_client

NEW_PASSWORD = "olive grove lantern harbour"
_LINK = re.compile(r"/invite/([A-Za-z0-9_-]{20,})")


def client_on(app: FastAPI) -> StaffClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return StaffClient(httpx.AsyncClient(transport=transport, base_url="https://1415.test"))


async def admin_client(app: FastAPI, engine: AsyncEngine, **user: Any) -> tuple[StaffClient, models.User]:
    return await mfa_client(app, engine, "admin", **user)


async def mfa_client(
    app: FastAPI, engine: AsyncEngine, role: str, **user: Any
) -> tuple[StaffClient, models.User]:
    """A user logged in the whole way: password, then the TOTP code (admins and supervisors
    must have one). English pages unless ``language`` says otherwise, so tests read the messages."""
    secret = pyotp.random_base32()
    user.setdefault("language", "en")
    row = await make_user(engine, role, totp_secret=secret, **user)
    client = client_on(app)
    response = await client.login(row.email)
    assert response.status_code == 303 and response.headers["location"] == "/login/totp"
    response = await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303, response.text
    assert (await client.get("/account")).status_code == 200  # the full session's CSRF token
    return client, row


async def make_municipality(engine: AsyncEngine, code: str, name_ar: str, name_en: str = "") -> int:
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        row = models.Municipality(code=code, name_ar=name_ar, name_en=name_en)
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


async def audit_rows(engine: AsyncEngine, action: str) -> list[models.AuditLog]:
    async with AsyncSession(engine) as session:
        result = await session.execute(
            select(models.AuditLog).where(models.AuditLog.action == action).order_by(models.AuditLog.id)  # type: ignore[arg-type]
        )
        return list(result.scalars())


async def user_by_email(engine: AsyncEngine, email: str) -> models.User | None:
    async with AsyncSession(engine) as session:
        result = await session.execute(select(models.User).where(models.User.email == email))  # type: ignore[arg-type]
        return result.scalar_one_or_none()


async def fresh(engine: AsyncEngine, user_id: int | None) -> models.User:
    async with AsyncSession(engine) as session:
        row = await session.get(models.User, user_id)
        assert row is not None
        return row


async def test_an_admin_invites_a_user_whose_link_sets_the_password_and_login_works(
    web: FastAPI, engine: AsyncEngine
) -> None:
    misrata = await make_municipality(engine, "MSR", "مصراتة", "Misrata")
    admin, me = await admin_client(web, engine)
    page = await admin.get("/admin/users")
    assert page.status_code == 200 and "Misrata (MSR)" in page.text
    response = await admin.post(
        "/admin/users",
        {
            "email": "  Huda.Officer@Misrata.gov.ly ",
            "name": "هدى",
            "role": "officer",
            "municipalities": [str(misrata)],
            "language": "ar",
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "No e-mail is sent" in response.text
    found = _LINK.search(response.text)
    assert found and "http://127.0.0.1:1415/invite/" + found.group(1) in response.text
    token = found.group(1)

    created = await user_by_email(engine, "huda.officer@misrata.gov.ly")
    assert created is not None and created.password_hash is None and created.role == "officer"
    [row] = await audit_rows(engine, "user.create")
    assert row.actor == me.email and row.actor_id == me.id and row.address == "203.0.113.7"
    assert (
        row.after is not None and row.after["municipalities"] == [misrata] and row.after["role"] == "officer"
    )

    listing = await admin.get("/admin/users")
    assert "huda.officer@misrata.gov.ly" in listing.text and "invited" in listing.text
    detail = await admin.get(f"/admin/users/{created.id}")
    assert token not in detail.text  # shown once

    async with staff_client(web) as newcomer:
        form = await newcomer.get(f"/invite/{token}")
        assert form.status_code == 200
        done = await newcomer.post(f"/invite/{token}", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
        assert done.status_code == 303
        login = await newcomer.login("huda.officer@misrata.gov.ly", NEW_PASSWORD)
        assert login.status_code == 303 and login.headers["location"] == "/"
        again = await newcomer.get(f"/invite/{token}")
        assert again.status_code == 404  # the link worked once
    listing = await admin.get("/admin/users")
    assert "active" in listing.text
    await admin.http.aclose()


@pytest.mark.parametrize("role", ["operator", "analyst", "agent", "officer"])
async def test_a_non_admin_is_refused_every_user_administration_route(
    web: FastAPI, engine: AsyncEngine, role: str
) -> None:
    target = await make_user(engine, "agent")
    client, _ = await logged_in(web, engine, role)
    await client.get("/account")  # a page with the session's CSRF token
    for method, path, form in [
        ("GET", "/admin/users", None),
        ("GET", "/admin/users?role=admin", None),
        ("POST", "/admin/users", {"email": "x@example.ly", "role": "admin"}),
        ("GET", f"/admin/users/{target.id}", None),
        ("POST", f"/admin/users/{target.id}", {"name": "x", "role": "admin"}),
        ("POST", f"/admin/users/{target.id}/disable", {}),
        ("POST", f"/admin/users/{target.id}/enable", {}),
        ("POST", f"/admin/users/{target.id}/reset", {}),
    ]:
        response = await (client.get(path) if method == "GET" else client.post(path, form))
        assert response.status_code == 403, (method, path, response.status_code)
    after = await fresh(engine, target.id)
    assert after.role == "agent" and after.disabled_at is None and after.password_hash is not None
    assert await user_by_email(engine, "x@example.ly") is None
    await client.http.aclose()


async def test_logged_out_visitors_are_sent_to_the_login(web: FastAPI, engine: AsyncEngine) -> None:
    async with staff_client(web) as anonymous:
        response = await anonymous.get("/admin/users")
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


async def test_editing_the_role_audits_before_and_after_and_ends_the_users_sessions(
    web: FastAPI, engine: AsyncEngine
) -> None:
    tripoli = await make_municipality(engine, "TRP", "طرابلس", "Tripoli")
    analyst, row_before = await logged_in(web, engine, "analyst")
    assert (await analyst.get("/api/inquiries/none")).status_code == 404  # analysts may read inquiries
    admin, _ = await admin_client(web, engine)
    response = await admin.post(
        f"/admin/users/{row_before.id}",
        {"name": "Renamed", "role": "agent", "municipalities": [str(tripoli)]},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/users/{row_before.id}?done=saved_sessions"
    page = await admin.get(response.headers["location"])
    assert "The user must log in again" in page.text and "Tripoli" in page.text

    [row] = await audit_rows(engine, "user.update")
    assert row.target == f"user:{row_before.id}" and row.actor == (await fresh(engine, row.actor_id)).email
    assert row.before is not None and row.after is not None
    assert row.before["role"] == "analyst" and row.before["municipalities"] == []
    assert row.after["role"] == "agent" and row.after["municipalities"] == [tripoli]
    assert row.after["name"] == "Renamed" and row.details["sessions_ended"] == 1
    edited = await fresh(engine, row_before.id)
    assert edited.role == "agent" and edited.name == "Renamed"

    # the edited user's old client is logged out: its next request goes to the login
    stale = await analyst.get("/account")
    assert stale.status_code == 303 and stale.headers["location"].startswith("/login")
    assert (await analyst.login(row_before.email)).status_code == 303
    assert (await analyst.get("/api/inquiries/none")).status_code == 403  # agents may not
    await analyst.http.aclose()
    await admin.http.aclose()


async def test_renaming_only_keeps_the_sessions_and_saving_nothing_audits_nothing(
    web: FastAPI, engine: AsyncEngine
) -> None:
    operator, op_row = await logged_in(web, engine, "operator")
    admin, _ = await admin_client(web, engine)
    response = await admin.post(f"/admin/users/{op_row.id}", {"name": "New name", "role": "operator"})
    assert response.headers["location"].endswith("?done=saved")
    response = await admin.post(f"/admin/users/{op_row.id}", {"name": "New name", "role": "operator"})
    assert response.headers["location"].endswith("?done=unchanged")
    assert len(await audit_rows(engine, "user.update")) == 1
    assert (await operator.get("/account")).status_code == 200
    await operator.http.aclose()
    await admin.http.aclose()


async def test_disabling_ends_the_users_sessions_at_once_and_login_then_fails(
    web: FastAPI, engine: AsyncEngine
) -> None:
    agent, agent_row = await logged_in(web, engine, "agent")
    assert (await agent.get("/account")).status_code == 200
    admin, _ = await admin_client(web, engine)
    response = await admin.post(f"/admin/users/{agent_row.id}/disable")
    assert response.status_code == 303 and response.headers["location"] == "/admin/users?done=disabled"
    listing = await admin.get(response.headers["location"])
    assert "The user is disabled." in listing.text and "disabled" in listing.text

    stale = await agent.get("/account")
    assert stale.status_code == 303 and stale.headers["location"].startswith("/login")
    login = await agent.login(agent_row.email)
    assert login.status_code == 401
    [row] = await audit_rows(engine, "user.disable")
    assert row.before is not None and row.after is not None
    assert row.before["disabled"] is False and row.after["disabled"] is True

    response = await admin.post(f"/admin/users/{agent_row.id}/enable")
    assert response.headers["location"] == f"/admin/users/{agent_row.id}?done=enabled"
    assert len(await audit_rows(engine, "user.enable")) == 1
    assert (await agent.login(agent_row.email)).status_code == 303
    await agent.http.aclose()
    await admin.http.aclose()


async def test_an_admin_cannot_disable_reset_or_demote_themselves(web: FastAPI, engine: AsyncEngine) -> None:
    admin, me = await admin_client(web, engine)
    response = await admin.post(f"/admin/users/{me.id}/disable")
    assert response.status_code == 400 and "You cannot disable your own account" in response.text
    response = await admin.post(f"/admin/users/{me.id}/reset")
    assert response.status_code == 400 and "on your account page" in response.text
    response = await admin.post(f"/admin/users/{me.id}", {"name": "Me", "role": "operator"})
    assert response.status_code == 400 and "You cannot change your own role" in response.text
    row = await fresh(engine, me.id)
    assert row.disabled_at is None and row.role == "admin" and row.password_hash is not None
    # renaming oneself is fine, and keeps this session
    response = await admin.post(f"/admin/users/{me.id}", {"name": "Me", "role": "admin"})
    assert response.status_code == 303
    assert (await admin.get("/admin/users")).status_code == 200
    await admin.http.aclose()


async def test_a_reset_shows_a_new_link_once_and_the_old_password_stops_working(
    web: FastAPI, engine: AsyncEngine
) -> None:
    operator, op_row = await logged_in(web, engine, "operator")
    admin, _ = await admin_client(web, engine)
    response = await admin.post(f"/admin/users/{op_row.id}/reset")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    found = _LINK.search(response.text)
    assert found and "old password" in response.text
    assert (await operator.get("/account")).status_code == 303  # the session ended
    assert (await operator.login(op_row.email, PASSWORD)).status_code == 401
    async with staff_client(web) as browser:
        await browser.get(f"/invite/{found.group(1)}")
        done = await browser.post(
            f"/invite/{found.group(1)}", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        )
        assert done.status_code == 303
    assert (await operator.login(op_row.email, NEW_PASSWORD)).status_code == 303
    assert len(await audit_rows(engine, "user.password_reset")) == 1
    await operator.http.aclose()
    await admin.http.aclose()


async def test_a_script_in_the_name_is_shown_escaped(web: FastAPI, engine: AsyncEngine) -> None:
    script = "<script>alert(1)</script>"
    target = await make_user(engine, "agent", name=script)
    admin, _ = await admin_client(web, engine)
    for path in ("/admin/users", f"/admin/users/{target.id}", f"/admin/users?q={script}"):
        page = await admin.get(path)
        assert script not in page.text
        assert html.escape(script, quote=False) in page.text or "&lt;script&gt;" in page.text
    response = await admin.post(
        "/admin/users", {"email": "xss@example.ly", "name": script, "role": "agent", "language": "en"}
    )
    assert response.status_code == 201 and script not in response.text
    await admin.http.aclose()


async def test_a_form_without_the_csrf_token_is_refused(web: FastAPI, engine: AsyncEngine) -> None:
    target = await make_user(engine, "agent")
    admin, _ = await admin_client(web, engine)
    response = await admin.post("/admin/users", {"email": "nocsrf@example.ly", "role": "agent"}, csrf=False)
    assert response.status_code == 403
    response = await admin.post(f"/admin/users/{target.id}/disable", {"csrf_token": "forged"}, csrf=False)
    assert response.status_code == 403
    assert await user_by_email(engine, "nocsrf@example.ly") is None
    assert (await fresh(engine, target.id)).disabled_at is None
    await admin.http.aclose()


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"email": "not-an-address", "role": "agent"}, 400, "Enter an e-mail address like"),
        ({"email": "", "role": "agent"}, 400, "Enter an e-mail address like"),
        ({"email": "a" * 250 + "@example.ly", "role": "agent"}, 400, "at most 254 characters"),
        ({"email": "ok@example.ly", "role": "superuser"}, 400, "Choose a role from the list."),
        ({"email": "ok@example.ly", "role": "agent", "name": "n" * 201}, 400, "at most 200 characters"),
        (
            {"email": "ok@example.ly", "role": "agent", "municipalities": ["999999"]},
            400,
            "Choose municipalities",
        ),
        (
            {"email": "ok@example.ly", "role": "agent", "municipalities": ["abc"]},
            400,
            "Choose municipalities",
        ),
        ({"email": "ok@example.ly", "role": "agent", "language": "fr"}, 400, "Choose Arabic or English."),
        ({"email": "TAKEN@example.ly", "role": "agent"}, 409, "exists already"),
    ],
    ids=[
        "invalid",
        "empty",
        "too-long-email",
        "role",
        "too-long-name",
        "unknown-muni",
        "bad-muni",
        "lang",
        "dup",
    ],
)
async def test_bad_invitations_are_reported_on_the_form(
    web: FastAPI, engine: AsyncEngine, form: dict[str, Any], status: int, message: str
) -> None:
    await make_user(engine, "agent", email="taken@example.ly")
    admin, _ = await admin_client(web, engine)
    response = await admin.post("/admin/users", form)
    assert response.status_code == status, response.text
    assert message in response.text and 'class="error-summary"' in response.text
    assert await user_by_email(engine, "ok@example.ly") is None
    assert await audit_rows(engine, "user.create") == []
    await admin.http.aclose()


async def test_bad_edits_are_reported_and_change_nothing(web: FastAPI, engine: AsyncEngine) -> None:
    target = await make_user(engine, "agent", name="Agent")
    admin, _ = await admin_client(web, engine)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "role": "root"}, "Choose a role from the list."),
        ({"name": "x" * 300, "role": "agent"}, "at most 200 characters"),
        ({"name": "x", "role": "agent", "municipalities": ["424242"]}, "Choose municipalities"),
        ({"name": "x", "role": "agent", "municipalities": ["1" * 40]}, "Choose municipalities"),
    ]
    for form, message in cases:
        response = await admin.post(f"/admin/users/{target.id}", form)
        assert response.status_code == 400 and message in response.text
    row = await fresh(engine, target.id)
    assert row.name == "Agent" and row.role == "agent"
    assert await audit_rows(engine, "user.update") == []
    await admin.http.aclose()


async def test_unknown_user_ids_give_a_not_found_page(web: FastAPI, engine: AsyncEngine) -> None:
    admin, _ = await admin_client(web, engine)
    for path in ("/admin/users/424242", "/admin/users/abc", "/admin/users/0", "/admin/users/" + "9" * 30):
        response = await admin.get(path)
        assert response.status_code == 404 and "There is no such user." in response.text, path
    for action in ("", "/disable", "/enable", "/reset"):
        response = await admin.post(f"/admin/users/424242{action}", {"name": "x", "role": "agent"})
        assert response.status_code == 404
    await admin.http.aclose()


async def test_the_list_filters_by_role_and_text_and_pages_by_fifty(
    web: FastAPI, engine: AsyncEngine
) -> None:
    tag = uuid.uuid4().hex[:6]
    for i in range(52):
        await make_user(engine, "analyst", email=f"a{i:02d}-{tag}@example.ly", name=f"Analyst {i:02d}")
    await make_user(engine, "officer", email=f"officer-{tag}@example.ly", name="Salem Officer")
    admin, _ = await admin_client(web, engine)

    first = await admin.get("/admin/users?role=analyst")
    assert first.status_code == 200 and "52 users" in first.text
    assert first.text.count('href="/admin/users/') == 50
    assert 'href="/admin/users?role=analyst&amp;page=2" rel="next"' in first.text
    second = await admin.get("/admin/users?role=analyst&page=2")
    assert second.text.count('href="/admin/users/') == 2 and 'rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    assert "officer-" not in first.text + second.text

    found = await admin.get("/admin/users?q=salem")
    assert f"officer-{tag}@example.ly" in found.text and "a00-" not in found.text
    found = await admin.get(f"/admin/users?q=A51-{tag.upper()}")
    assert f"a51-{tag}@example.ly" in found.text and "1 user" in found.text
    none = await admin.get("/admin/users?q=100%25_")  # LIKE wildcards are plain characters
    assert "No users match." in none.text

    for query, message in [
        ("role=root", "Choose a role from the list."),
        ("page=0", "The page number is not valid."),
        ("page=abc", "The page number is not valid."),
        ("q=" + "x" * 300, "The search text is too long."),
    ]:
        response = await admin.get(f"/admin/users?{query}")
        assert response.status_code == 400 and message in response.text, query
    await admin.http.aclose()


async def test_the_list_shows_role_municipalities_state_second_factor_and_last_login(
    web: FastAPI, engine: AsyncEngine
) -> None:
    benghazi = await make_municipality(engine, "BNG", "بنغازي", "Benghazi")
    officer = await make_user(engine, "officer", name="Benghazi officer", municipalities=[benghazi])
    await make_user(engine, "agent", name="Gone agent", disabled=True)
    admin, me = await admin_client(web, engine)
    page = await admin.get("/admin/users")
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"<tr>\s*<td><a [^>]*>([^<]+)</a>.*?</tr>", page.text, re.S)
    }
    assert "Benghazi" in rows["Benghazi officer"] and "officer" in rows["Benghazi officer"]
    assert "tag--active" in rows["Benghazi officer"] and ">off<" in rows["Benghazi officer"]
    assert "tag--disabled" in rows["Gone agent"]
    mine = rows[me.name]
    assert "All municipalities" in mine and ">on<" in mine
    assert re.search(
        r"<td><bdi dir=\"ltr\">\d{4}-\d{2}-\d{2} \d{2}:\d{2}</bdi></td>\s*</tr>", mine
    )  # logged in just now
    assert officer.id is not None
    await admin.http.aclose()


async def test_the_pages_are_in_arabic_for_an_arabic_speaking_admin(
    web: FastAPI, engine: AsyncEngine
) -> None:
    admin, _ = await admin_client(web, engine, language="ar")
    page = await admin.get("/admin/users")
    assert 'dir="rtl"' in page.text and "دعوة مستخدم" in page.text
    await admin.http.aclose()


async def test_a_scoped_admin_manages_only_the_users_of_their_municipalities(
    web: FastAPI, engine: AsyncEngine
) -> None:
    zawiya = await make_municipality(engine, "ZAW", "الزاوية", "Zawiya")
    sabha = await make_municipality(engine, "SEB", "سبها", "Sabha")
    inside = await make_user(engine, "officer", name="Zawiya officer", municipalities=[zawiya])
    outside = await make_user(engine, "officer", name="Sabha officer", municipalities=[sabha])
    both = await make_user(engine, "officer", name="Both officer", municipalities=[zawiya, sabha])
    everywhere = await make_user(engine, "operator", name="Everywhere operator")
    admin, me = await admin_client(web, engine, municipalities=[zawiya])

    listing = await admin.get("/admin/users")
    assert "Zawiya officer" in listing.text and me.email in listing.text
    for name in ("Sabha officer", "Both officer", "Everywhere operator"):
        assert name not in listing.text
    assert "Sabha (SEB)" not in listing.text  # not offered in the invitation form either
    assert (await admin.get(f"/admin/users/{inside.id}")).status_code == 200
    for other in (outside, both, everywhere):
        assert (await admin.get(f"/admin/users/{other.id}")).status_code == 403
        for action in ("", "/disable", "/reset"):
            form = {"name": "x", "role": "officer", "municipalities": [str(zawiya)]}
            assert (await admin.post(f"/admin/users/{other.id}{action}", form)).status_code == 403
        row = await fresh(engine, other.id)
        assert row.disabled_at is None and row.password_hash is not None and row.name != "x"

    no_scope = await admin.post("/admin/users", {"email": "n1@example.ly", "role": "officer"})
    assert no_scope.status_code == 400 and "Choose at least one of your municipalities." in no_scope.text
    beyond = await admin.post(
        "/admin/users", {"email": "n2@example.ly", "role": "officer", "municipalities": [str(sabha)]}
    )
    assert beyond.status_code == 400 and "Choose municipalities from the list." in beyond.text
    widen = await admin.post(
        f"/admin/users/{inside.id}",
        {"name": "x", "role": "officer", "municipalities": [str(zawiya), str(sabha)]},
    )
    assert widen.status_code == 400
    fine = await admin.post(
        "/admin/users", {"email": "n3@example.ly", "role": "officer", "municipalities": [str(zawiya)]}
    )
    assert fine.status_code == 201
    assert (
        await user_by_email(engine, "n1@example.ly") is None
        and await user_by_email(engine, "n2@example.ly") is None
    )
    # the audit log has no municipality on its rows: it is for admins who see everything
    assert (await admin.get("/admin/audit")).status_code == 403
    assert (await admin.get("/admin/audit.csv")).status_code == 403
    await admin.http.aclose()
