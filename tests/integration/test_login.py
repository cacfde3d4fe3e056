"""Login done properly: same answer for unknown users and wrong passwords, throttling, session
timeouts and revocation, CSRF, safe redirects, the second factor, tokens, cookie flags."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.accounts import passwords
from callcenter.accounts.roles import Role
from callcenter.settings import Settings
from callcenter.web.pages.common import safe_next
from tests.webapp import PASSWORD, csrf_of, logged_in, make_user, running_app, staff_client

AUDIT = models.table(models.AuditLog)
SESSION = models.table(models.UserSession)
TOKEN = models.table(models.ApiToken)


async def _actions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return [r[0] for r in await conn.execute(select(AUDIT.c.action).order_by(AUDIT.c.id))]


def _error_text(html: str) -> str:
    start = html.index('class="error-summary"')
    return html[start : html.index("</div>", start)]


async def test_unknown_user_and_wrong_password_get_the_same_answer_and_the_same_work(
    web: FastAPI, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await make_user(engine, Role.operator)
    verified: list[str] = []
    real = passwords._hasher

    class Counting:
        def verify(self, hash: str, password: str) -> bool:
            verified.append(hash)
            return real.verify(hash, password)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    async with staff_client(web) as client:
        wrong = await client.login(user.email, "not the password at all")
        unknown = await client.login("nobody@test.1415.ly", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert _error_text(wrong.text) == _error_text(unknown.text)
    assert len(verified) == 2  # the unknown user's attempt verifies a dummy hash too
    assert (await _actions(engine)).count("login.failed") == 2


async def test_five_failures_lock_the_account_with_a_growing_lock(
    settings: Settings, redis: object, engine: AsyncEngine
) -> None:
    settings.login_lock_base_s = 0.4
    async with running_app(settings) as app:
        user = await make_user(engine, Role.analyst)
        async with staff_client(app) as client:
            answers = [(await client.login(user.email, "wrong password here")).status_code for _ in range(5)]
            assert answers == [401, 401, 401, 401, 429]
            locked = await client.login(user.email, PASSWORD)  # even the right password waits
            assert locked.status_code == 429 and "error-summary" in locked.text
            await asyncio.sleep(0.5)
            again = await client.login(user.email, "wrong password here")
            assert again.status_code == 429  # the sixth failure locks for 0.8 s
            await asyncio.sleep(0.5)
            assert (await client.login(user.email, PASSWORD)).status_code == 429
            await asyncio.sleep(0.4)
            assert (await client.login(user.email, PASSWORD)).status_code == 303
    assert "login.locked" in await _actions(engine)


async def test_a_disabled_user_cannot_log_in_and_hears_nothing_special(
    web: FastAPI, engine: AsyncEngine
) -> None:
    user = await make_user(engine, Role.operator, disabled=True)
    async with staff_client(web) as client:
        response = await client.login(user.email)
    assert response.status_code == 401


async def test_cookies_are_httponly_samesite_lax_and_secure(web: FastAPI, engine: AsyncEngine) -> None:
    user = await make_user(engine, Role.operator)
    async with staff_client(web) as client:
        response = await client.login(user.email)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie


async def test_idle_and_absolute_timeouts_end_the_session(web: FastAPI, engine: AsyncEngine) -> None:
    client, user = await logged_in(web, engine, Role.operator)
    assert (await client.get("/account")).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(
            update(SESSION)
            .where(SESSION.c.user_id == user.id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(hours=1))
        )
    idle = await client.get("/account")
    assert idle.status_code == 303 and idle.headers["location"].startswith("/login?next=/account")
    await client.login(user.email)
    async with engine.begin() as conn:
        await conn.execute(
            update(SESSION)
            .where(SESSION.c.user_id == user.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await client.get("/account")).status_code == 303
    await client.http.aclose()


async def test_changing_the_password_ends_the_other_sessions_but_not_this_one(
    web: FastAPI, engine: AsyncEngine
) -> None:
    here, user = await logged_in(web, engine, Role.operator)
    elsewhere = await logged_in(web, engine, Role.operator, email="other-" + user.email)
    await elsewhere[0].http.aclose()
    other_device = await logged_in(web, engine, Role.analyst)
    await other_device[0].http.aclose()
    async with staff_client(web) as second:
        await second.login(user.email)
        await here.get("/account")
        new = "a brand new long passphrase"
        changed = await here.post("/account/password", {"current": PASSWORD, "password": new, "confirm": new})
        assert changed.status_code == 303
        assert (await here.get("/account")).status_code == 200
        assert (await second.get("/account")).status_code == 303  # revoked
        assert (await second.login(user.email, new)).status_code == 303
    assert "user.password_change" in await _actions(engine)
    await here.http.aclose()


@pytest.mark.parametrize(
    "bad",
    ["qwertyuiop12", "short", "aaaaaaaaaaaaaaaa", "password1234!", "x" * 300],
)
async def test_weak_passwords_are_refused(web: FastAPI, engine: AsyncEngine, bad: str) -> None:
    client, _ = await logged_in(web, engine, Role.operator)
    await client.get("/account")
    response = await client.post("/account/password", {"current": PASSWORD, "password": bad, "confirm": bad})
    assert response.status_code == 400 and "error-summary" in response.text
    await client.http.aclose()


async def test_a_form_without_its_csrf_token_or_with_another_sessions_is_refused(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await logged_in(web, engine, Role.operator)
    other, _ = await logged_in(web, engine, Role.operator)
    await other.get("/account")
    await client.get("/account")
    missing = await client.post("/account/language", {"language": "en"}, csrf=False)
    stolen = await client.post("/account/language", {"language": "en", "csrf_token": other.csrf})
    assert missing.status_code == stolen.status_code == 403
    assert "This form has expired" in missing.text or "انتهت صلاحية" in missing.text
    anonymous = await client.http.post("/login", data={"email": "a@b.ly", "password": "x"})
    assert anonymous.status_code == 403
    await client.http.aclose()
    await other.http.aclose()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/campaigns/3?x=1", "/campaigns/3?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
    ],
)
def test_next_never_leaves_the_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


async def test_login_with_an_open_redirect_in_next_lands_at_home(web: FastAPI, engine: AsyncEngine) -> None:
    user = await make_user(engine, Role.operator)
    async with staff_client(web) as client:
        page = await client.get("/login?next=//evil.example/")
        assert "evil.example" not in page.text
        response = await client.post(
            "/login", {"email": user.email, "password": PASSWORD, "next": "//evil.example/"}
        )
    assert response.headers["location"] == "/"


async def test_admins_must_enrol_totp_then_give_a_code_at_each_login(
    web: FastAPI, engine: AsyncEngine
) -> None:
    admin = await make_user(engine, Role.admin)
    async with staff_client(web) as client:
        first = await client.login(admin.email)
        assert first.headers["location"] == "/account/totp"
        blocked = await client.get("/admin/users")
        assert blocked.status_code == 303 and blocked.headers["location"] == "/account/totp"
        page = await client.get("/account/totp")
        secret = page.text.split('id="totp-secret">')[1].split("<")[0]
        wrong = await client.post("/account/totp", {"secret": secret, "code": "000000"})
        assert wrong.status_code == 400
        code = pyotp.TOTP(secret).now()
        arabic = code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
        enrolled = await client.post("/account/totp", {"secret": secret, "code": arabic})
        assert enrolled.status_code == 303
        assert (await client.get("/account")).status_code == 200
    async with staff_client(web) as client:
        step = await client.login(admin.email)
        assert step.headers["location"].startswith("/login/totp")
        assert (await client.get("/account")).status_code == 303  # not before the code
        replay = await client.post("/login/totp", {"code": code})
        assert replay.status_code == 401  # the enrolment's code cannot be used twice
        async with engine.begin() as conn:  # the next step's code, as the app would show it 30 s later
            step_now = int(datetime.now(UTC).timestamp() // 30)
            await conn.execute(
                text("UPDATE staff_user SET totp_last_step = :s WHERE id = :i"),
                {"s": step_now - 2, "i": admin.id},
            )
        fresh = await client.post("/login/totp", {"code": pyotp.TOTP(secret).now()})
        assert fresh.status_code == 303
        assert (await client.get("/account")).status_code == 200
    actions = await _actions(engine)
    assert {"user.totp_enrol", "login.totp_failed", "login.totp"} <= set(actions)


async def test_api_tokens_are_shown_once_stored_hashed_scoped_and_revocable(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await logged_in(web, engine, Role.operator)
    await client.get("/account")
    made = await client.post(
        "/account/tokens", {"name": "reports", "scopes": ["inquiries:read"], "days": "30"}
    )
    assert made.status_code == 201
    token = made.text.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("cc_")
    async with engine.connect() as conn:
        stored = (await conn.execute(select(TOKEN.c.token_hash, TOKEN.c.id))).one()
    assert token not in stored.token_hash and token not in (await client.get("/account")).text
    api = client.http
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await api.get("/api/inquiries/none", headers=bearer)).status_code == 404  # in, nothing there
    assert (await api.post("/api/campaigns/1/pause", headers=bearer)).status_code == 403  # wrong scope
    await client.get("/account")
    assert (await client.post(f"/account/tokens/{stored.id}/revoke", {})).status_code == 303
    assert (await api.get("/api/inquiries/none", headers=bearer)).status_code == 401
    refused = await client.post("/account/tokens", {"name": "too much", "scopes": ["admin"], "days": "30"})
    assert refused.status_code == 400  # an operator cannot grant the admin scope
    await client.http.aclose()


async def test_an_expired_token_is_refused(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await logged_in(web, engine, Role.analyst)
    await client.get("/account")
    made = await client.post("/account/tokens", {"name": "r", "scopes": ["results:read"], "days": "1"})
    token = made.text.split('id="new-token">')[1].split("<")[0]
    async with engine.begin() as conn:
        await conn.execute(update(TOKEN).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = await client.http.get("/api/inquiries/x/results", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    await client.http.aclose()


async def test_pages_carry_a_strict_csp_and_escape_what_users_typed(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, _ = await logged_in(web, engine, Role.operator, name="<script>alert(1)</script>")
    page = await client.get("/account")
    assert (
        "<script>alert(1)</script>" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    )
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    csrf_of(page.text)
    await client.http.aclose()


async def test_an_oversized_body_is_refused_before_it_is_read(web: FastAPI, engine: AsyncEngine) -> None:
    client, _ = await logged_in(web, engine, Role.operator)
    huge = "x" * (web.state.settings.max_upload_bytes + 1)
    response = await client.http.post(
        "/account/language", content=huge, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 413
    await client.http.aclose()


async def test_the_language_switch_turns_the_page_left_to_right_and_is_remembered(
    web: FastAPI, engine: AsyncEngine
) -> None:
    client, user = await logged_in(web, engine, Role.operator)
    await client.get("/account")
    assert (await client.post("/language", {"language": "en", "next": "/account"})).status_code == 303
    page = await client.get("/account")
    assert '<html lang="en" dir="ltr">' in page.text
    async with engine.connect() as conn:
        language = (
            await conn.execute(text("SELECT language FROM staff_user WHERE id = :i"), {"i": user.id})
        ).scalar()
    assert language == "en"
    await client.http.aclose()
