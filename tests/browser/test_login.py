"""Logging in as staff do it: the form, the lock after repeated failures, the second factor,
logging out, and the language switch that turns the whole page from right-to-left to left-to-right."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
from playwright.async_api import Page

from callcenter.testing.webserver import UNHELD_HEADER
from tests.browser.support import (
    Site,
    assert_accessible,
    in_both_languages,
    language_of,
    log_in,
    log_out,
    path_of,
    screenshot,
    squash,
    switch_language,
    translated,
    translated_plural,
)
from tests.webapp import PASSWORD, make_user


async def test_an_operator_logs_in_lands_on_the_campaigns_and_logs_out(page: Page, site: Site) -> None:
    operator = await make_user(site.engine, "operator")
    await page.goto(site.url("/login"))
    await screenshot(page, "login")
    answer = await log_in(page, site, operator.email)
    assert answer is not None and answer.status == 303
    assert path_of(page) == "/campaigns"
    await log_out(page)
    assert path_of(page) == "/login"
    await page.goto(site.url("/account"))  # the session is gone: back to the login
    assert path_of(page) == "/login" and "next=/account" in page.url


async def test_five_wrong_passwords_lock_the_account_with_a_message_in_both_languages(
    page: Page, site: Site
) -> None:
    operator = await make_user(site.engine, "operator")
    await page.goto(site.url("/login"))
    assert await language_of(page) == "ar"
    statuses = []
    for _ in range(site.settings.login_max_failures):
        answer = await log_in(page, site, operator.email, "not the password at all")
        assert answer is not None
        statuses.append(answer.status)
    assert statuses == [401] * (site.settings.login_max_failures - 1) + [429]
    minutes = 1  # the first lock lasts login_lock_base_s (30 s): "one minute"
    singular = "Too many failed attempts. Try again in %(n)d minute."
    plural = "Too many failed attempts. Try again in %(n)d minutes."
    arabic = translated_plural(singular, plural, minutes, "ar") % {"n": minutes}
    assert arabic == "محاولات فاشلة كثيرة. حاول مرة أخرى بعد دقيقة واحدة."  # ar/core.po, form "one"
    summary = page.locator(".error-summary")
    assert squash(await summary.inner_text()).endswith(squash(arabic))
    assert await summary.get_attribute("role") == "alert"
    assert await page.get_attribute("#f-email", "value") == operator.email  # kept, not retyped
    await screenshot(page, "login-locked")
    await assert_accessible(page, "login-locked")

    # the right password does not get through the lock either, and the English page says so
    await switch_language(page, "en")
    answer = await log_in(page, site, operator.email, PASSWORD)
    assert answer is not None and answer.status == 429
    english = (plural if minutes != 1 else singular) % {"n": minutes}
    assert squash(await summary.inner_text()).endswith(english)
    await screenshot(page, "login-locked")


async def test_an_admin_enrols_a_second_factor_then_needs_the_code_to_log_in(page: Page, site: Site) -> None:
    admin = await make_user(site.engine, "admin")
    await log_in(page, site, admin.email)
    assert path_of(page) == "/account/totp"  # an admin cannot go on without a second factor
    for elsewhere in ("/", "/campaigns"):
        await page.goto(site.url(elsewhere))
        assert path_of(page) == "/account/totp", elsewhere
    await in_both_languages(page, "account-totp", axe=True)

    secret = (await page.inner_text("#totp-secret")).strip()
    await page.fill("#f-code", pyotp.TOTP(secret).now())
    async with page.expect_navigation():
        await page.click("main form[action='/account/totp'] button[type=submit]")
    assert path_of(page) == "/account"
    notice = translated("Two-step login is set up.", await language_of(page))
    assert squash(await page.inner_text(".notice--success")) == notice
    await screenshot(page, "account-totp-done")

    await log_out(page)
    await log_in(page, site, admin.email)
    assert path_of(page) == "/login/totp"
    await in_both_languages(page, "login-totp", axe=True)
    # the code just used is refused (no replay); the next time step's code is accepted
    await page.fill("#f-code", pyotp.TOTP(secret).now())
    async with page.expect_response(lambda r: r.request.method == "POST") as refused:
        await page.click("main form[action='/login/totp'] button[type=submit]")
    assert (await refused.value).status == 401
    await page.fill("#f-code", pyotp.TOTP(secret).at(time.time() + 30))
    async with page.expect_navigation():
        await page.click("main form[action='/login/totp'] button[type=submit]")
    assert path_of(page) == "/campaigns"


async def test_the_language_switch_turns_the_login_page_to_english_and_back(page: Page, site: Site) -> None:
    await page.goto(site.url("/login"))
    html = page.locator("html")
    assert (await html.get_attribute("dir"), await html.get_attribute("lang")) == ("rtl", "ar")
    await screenshot(page, "login")
    await switch_language(page, "en")
    assert (await html.get_attribute("dir"), await html.get_attribute("lang")) == ("ltr", "en")
    assert await page.inner_text("h1") == "Log in"
    await screenshot(page, "login")
    await page.reload()  # remembered (a cookie), not only for the next page
    assert await html.get_attribute("dir") == "ltr"
    await switch_language(page, "ar")
    assert (await html.get_attribute("dir"), await html.get_attribute("lang")) == ("rtl", "ar")
    assert await page.inner_text("h1") == translated("Log in", "ar")


async def test_a_logged_in_user_switches_the_language_and_it_stays_on_the_account(
    page: Page, site: Site
) -> None:
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    await page.goto(site.url("/account"))
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.click(".lang-switch button[name=language][value=en]")
    await page.wait_for_load_state()
    assert (await answer.value).status == 303, squash(await page.inner_text("main"))
    assert path_of(page) == "/account"
    assert (await page.get_attribute("html", "lang"), await page.get_attribute("html", "dir")) == (
        "en",
        "ltr",
    )
    await page.context.clear_cookies(name="cc_lang")  # not only the cookie: the account says English
    await page.goto(site.url("/account"))
    assert await language_of(page) == "en"


async def test_a_change_is_saved_before_the_browser_follows_the_redirect(page: Page, site: Site) -> None:
    """A form's redirect must lead to a page that shows the change (here: the account's language
    form, then the account page). The test's server holds its answers until the app is done
    (``HoldResponses``), except when asked not to, as here: a production server does not hold
    them. A plain HTTP client on one kept-alive connection follows as fast as a browser can."""
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    await page.goto(site.url("/account"))
    token = await page.get_attribute("meta[name=csrf-token]", "content") or ""
    session = {c["name"]: c["value"] for c in await page.context.cookies() if c["name"] == "cc_session"}
    assert session, "logged in"
    stale = []
    rounds = 60
    # the cookie is set by hand: httpx does not send a Secure cookie over http, even to localhost
    headers = {UNHELD_HEADER: "1", "cookie": f"cc_session={session['cc_session']}"}
    async with httpx.AsyncClient(base_url=site.url(""), headers=headers) as client:
        for n in range(rounds):
            want = "en" if n % 2 == 0 else "ar"
            form = {"language": want, "csrf_token": token}
            answer = await client.post("/account/language", data=form)
            assert answer.status_code == 303, answer.text
            shown = await client.get("/account")  # no cc_lang sent: what the account says
            found = re.search(r'<html lang="(\w+)"', shown.text)
            if found is None or found.group(1) != want:
                stale.append(n)
    assert not stale, (
        f"{len(stale)} of {rounds} pages opened right after the redirect showed the language from before: "
        "the request's database session (callcenter/web/deps.py get_session) commits after the "
        "response has been sent; Depends(get_session, scope='function') commits before it"
    )
