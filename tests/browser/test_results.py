"""The analysts' workspace in a real browser: an analyst logs in, opens an inquiry's results,
switches between weighted and unweighted, opens a crosstab, and downloads an XLSX workbook
and an SPSS file, which the test opens with openpyxl and pyreadstat (the right-to-left flag,
the Arabic labels); screenshots in Arabic and English."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pyreadstat
from playwright.async_api import Page
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.analysis.margin_store import load_file
from tests.analysis_data import MARGINS_CSV, seed
from tests.browser.support import (
    SHOTS,
    Site,
    Watch,
    assert_accessible,
    in_both_languages,
    language_of,
    log_in,
    path_of,
    screenshot,
    switch_language,
    translated,
)
from tests.webapp import make_user

FILTERS = "form.results-filters"
_TOP = {"x": 0, "y": 0, "width": 1366, "height": 1500}
EXPORT = "form[action$='/export']"


async def _show(page: Page) -> None:
    async with page.expect_navigation():
        await page.click(f"{FILTERS} button[type=submit]")


async def _download(page: Page, fmt: str, target: Path) -> Path:
    await page.select_option(f"{EXPORT} select[name=format]", fmt)
    async with page.expect_download() as waiting:
        await page.click(f"{EXPORT} button[type=submit]")
    download = await waiting.value
    assert download.suggested_filename == f"roads-answers.{fmt}"
    await download.save_as(target)
    return target


async def test_an_analyst_reads_weighted_results_a_crosstab_and_downloads_xlsx_and_sav(
    page: Page, site: Site, watch: Watch, tmp_path: Path
) -> None:
    await seed(site.engine)
    async with AsyncSession(site.engine, expire_on_commit=False) as session, session.begin():
        await load_file(session, MARGINS_CSV, source="census.csv", actor="test")
    analyst = await make_user(site.engine, "analyst")
    await log_in(page, site, analyst.email)
    assert path_of(page) == "/results"  # an analyst's home
    await page.click("a[href='/results/roads']")
    assert path_of(page) == "/results/roads"
    language = await language_of(page)
    assert language == "ar" and await page.get_attribute("html", "dir") == "rtl"

    # weighted and unweighted side by side, with the weighting report
    satisfied = page.locator("table[data-question=satisfied]")
    assert await satisfied.locator("td[data-col=weighted]").count() == 2
    assert await satisfied.locator("td[data-col=share]").count() == 2
    assert await page.locator("details[data-weighting=report]").count() == 1
    await screenshot(page, "results")
    await assert_accessible(page, "results")

    # unweighted only, then weighted only
    await page.select_option(f"{FILTERS} select[name=view]", "unweighted")
    await _show(page)
    assert await satisfied.locator("td[data-col=weighted]").count() == 0
    assert await satisfied.locator("td[data-col=share]").count() == 2
    await page.select_option(f"{FILTERS} select[name=view]", "weighted")
    await _show(page)
    assert await satisfied.locator("td[data-col=weighted]").count() == 2
    assert await satisfied.locator("td[data-col=share]").count() == 0

    # a crosstab by channel, comparing SMS with voice
    await page.select_option(f"{FILTERS} select[name=view]", "both")
    await page.select_option(f"{FILTERS} select[name=by]", "channel")
    await _show(page)
    await page.select_option(f"{FILTERS} select[name=a]", "sms")
    await page.select_option(f"{FILTERS} select[name=b]", "voice")
    await _show(page)
    crosstab = page.locator("table[data-crosstab=priority]")
    assert await crosstab.locator("tbody tr").count() == 2
    difference = page.locator("table[data-difference=priority]")
    reading = translated("Higher in %(a)s than in %(b)s: the interval excludes zero.", language) % {
        "a": translated("SMS", language),
        "b": translated("Voice", language),
    }
    assert reading in await difference.inner_text()
    crosstab_url = page.url
    await in_both_languages(page, "results-crosstab", axe=True)
    # the page's top, with the crosstab, in each language (for the README; the language switch
    # comes back to the path without its query)
    for shown in ("ar", "en"):
        if await language_of(page) != shown:
            await switch_language(page, shown)
        await page.goto(crosstab_url)
        await page.locator("#q-priority").scroll_into_view_if_needed()
        await page.screenshot(path=str(SHOTS / f"results-top-{shown}.png"), full_page=True, clip=_TOP)
    await switch_language(page, "ar")
    await page.goto(crosstab_url)

    # downloads: an XLSX workbook with right-to-left sheets, an SPSS file with Arabic labels
    workbook = openpyxl.load_workbook(await _download(page, "xlsx", tmp_path / "roads.xlsx"))
    assert workbook["respondents"].sheet_view.rightToLeft is True
    assert workbook["satisfied"].sheet_view.rightToLeft is True
    assert workbook["respondents"].max_row == 51
    frame, meta = pyreadstat.read_sav(
        str(await _download(page, "sav", tmp_path / "roads.sav")), output_format="polars"
    )
    assert frame.height == 50
    assert meta.column_names_to_labels["satisfied"] == "هل أنت راضٍ عن أعمال صيانة الطرق في بلديتك؟"
    assert meta.variable_value_labels["satisfied"] == {1.0: "نعم", 0.0: "لا"}
    assert meta.variable_value_labels["priority"] == {1.0: "الطرق", 2.0: "المياه", 3.0: "الكهرباء"}

    # the response rates, in both languages
    await page.click("a[href^='/results/roads/rates']")
    assert path_of(page) == "/results/roads/rates"
    await in_both_languages(page, "results-rates", axe=True)
    assert not watch.csp and not watch.errors, watch.csp + watch.errors


async def test_an_admin_loads_population_margins(page: Page, site: Site, tmp_path: Path) -> None:
    import pyotp

    await seed(site.engine)
    secret = pyotp.random_base32()
    admin = await make_user(site.engine, "admin", totp_secret=secret)
    await log_in(page, site, admin.email)
    await page.fill("#f-code", pyotp.TOTP(secret).now())
    async with page.expect_navigation():
        await page.click("main form[action='/login/totp'] button[type=submit]")
    await page.goto(site.url("/admin/margins"))
    census = tmp_path / "census.csv"
    census.write_text(MARGINS_CSV, encoding="utf-8")
    await page.set_input_files("input[name=file]", str(census))
    async with page.expect_navigation():
        await page.click("main form[action='/admin/margins'] button")
    assert "done=loaded" in page.url
    assert await page.locator("table tbody tr").count() == 1
    await in_both_languages(page, "admin-margins", axe=True)
