"""What the browser is refused: a page the role may not see, and a form sent without its
CSRF token (as a forged cross-site form would be)."""

from __future__ import annotations

from playwright.async_api import Page

from tests.browser.support import (
    Site,
    assert_accessible,
    in_both_languages,
    language_of,
    log_in,
    screenshot,
    squash,
    switch_language,
    translated,
)
from tests.webapp import PASSWORD, make_user


async def test_an_analyst_opening_the_users_page_gets_the_403_page(page: Page, site: Site) -> None:
    analyst = await make_user(site.engine, "analyst")
    await log_in(page, site, analyst.email)
    answer = await page.goto(site.url("/admin/users"))
    assert answer is not None and answer.status == 403
    language = await language_of(page)
    assert squash(await page.inner_text("h1")) == translated("You cannot see this page", language)
    nav = [squash(t) for t in await page.locator("nav.nav a").all_inner_texts()]
    assert translated("Users", language) not in nav  # the menu never offers it either
    await in_both_languages(page, "forbidden", axe=True)


async def test_a_form_sent_without_its_csrf_token_is_refused_with_the_expired_form_page(
    page: Page, site: Site
) -> None:
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    new_password = "a brand new passphrase for testing"
    for language in ("ar", "en"):
        await page.goto(site.url("/account"))
        if await language_of(page) != language:
            await switch_language(page, language)
        form = "main form[action='/account/password']"
        await page.fill(f"{form} [name=current]", PASSWORD)
        await page.fill(f"{form} [name=password]", new_password)
        await page.fill(f"{form} [name=confirm]", new_password)
        # what a forged form lacks: the hidden field, and the header htmx would add
        await page.evaluate(
            """(form) => {
                document.querySelector(form + " input[name=csrf_token]").remove();
                document.body.removeAttribute("hx-headers");
            }""",
            form,
        )
        assert await page.locator(f"{form} input[name=csrf_token]").count() == 0
        async with page.expect_response(lambda r: r.request.method == "POST") as answer:
            await page.click(f"{form} button[type=submit]")
        await page.wait_for_load_state()
        assert (await answer.value).status == 403
        assert squash(await page.inner_text("h1")) == translated("This form has expired", language)
        await screenshot(page, "csrf-expired")
        await assert_accessible(page, "csrf-expired")
    # nothing changed: the old password still logs in
    await page.context.clear_cookies()
    again = await log_in(page, site, operator.email, PASSWORD)
    assert again is not None and again.status == 303
