"""Uploading an inquiry file in the browser and checking, on its page, what citizens will get:
each SMS exactly as the engine sends it, its encoding and how many segments it costs."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Dialog, Page

from callcenter.inquiry.definition import Language
from callcenter.inquiry.preview import SmsPreview, preview_inquiry
from callcenter.inquiry.schema import parse_inquiry_yaml
from tests.browser.support import (
    Site,
    assert_accessible,
    in_both_languages,
    language_of,
    log_in,
    path_of,
    screenshot,
    squash,
    translated,
    translated_plural,
)
from tests.factories import SAMPLE
from tests.webapp import make_user

FILE_FORM = "main form:has(input[name=file])"


async def upload(page: Page, site: Site, path: Path) -> int:
    await page.goto(site.url("/inquiries/new"))
    await page.set_input_files(f"{FILE_FORM} input[name=file]", str(path))
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.click(f"{FILE_FORM} button[type=submit]")
    await page.wait_for_load_state()
    return (await answer.value).status


def expected_sms(yaml_text: str) -> list[tuple[Language, SmsPreview]]:
    """(language, SMS) for every question and the thanks, from the engine's own preview."""
    preview = preview_inquiry(parse_inquiry_yaml(yaml_text).definition())
    items = [(lp.language, lp.sms) for q in preview.questions for lp in q.languages]
    return items + [(lp.language, lp.sms) for lp in preview.thanks]


async def test_an_uploaded_inquiry_shows_each_sms_with_its_encoding_and_segments(
    page: Page, site: Site
) -> None:
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    status = await upload(page, site, SAMPLE)
    assert status == 303
    assert path_of(page) == "/inquiries/return-of-life-roads"
    language = await language_of(page)
    assert squash(await page.inner_text("h1")) == "استبيان أعمال الطرق لبرنامج عودة الحياة"

    wanted = expected_sms(SAMPLE.read_text(encoding="utf-8"))
    assert wanted, "the sample has questions"
    for sms_language, sms in wanted:
        block = page.locator(f".preview[data-language={sms_language}]").filter(
            has=page.locator(".sms-bubble", has_text=sms.text.split("\n", 1)[0])
        )
        texts = [await b.text_content() for b in await block.locator(".sms-bubble").all()]
        assert sms.text in texts, f"no {sms_language} bubble shows {sms.text!r}; bubbles: {texts}"
        index = texts.index(sms.text)
        line = squash(await block.nth(index).inner_text())
        name = "GSM-7" if sms.encoding == "gsm7" else "UCS-2"
        segments = translated_plural("%(num)d segment", "%(num)d segments", sms.segments, language)
        assert name in line and segments % {"num": sms.segments} in line, line
    await in_both_languages(page, "inquiry-detail", axe=True)


async def test_markup_in_an_uploaded_inquiry_is_shown_as_text_not_run(
    page: Page, site: Site, tmp_path: Path
) -> None:
    dialogs: list[str] = []

    async def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", refuse)
    operator = await make_user(site.engine, "operator")
    await log_in(page, site, operator.email)
    script = "<script>alert(1)</script>"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "slug: evil\n"
        f"title: {{ar: '{script}', en: '<img src=x onerror=alert(2)>'}}\n"
        f"questions:\n  - {{key: q1, kind: yes_no, text: {{ar: '{script}', en: '{script}'}}}}\n",
        encoding="utf-8",
    )
    assert await upload(page, site, evil) == 303
    assert squash(await page.inner_text("h1")) == script
    assert await page.locator("main script, main img[src=x]").count() == 0
    assert script in (await page.locator(".sms-bubble").first.text_content() or "")

    # a file that is not an inquiry: the form again, its error next to the file field
    junk = tmp_path / "junk.yaml"
    junk.write_text("- just\n- a list\n", encoding="utf-8")
    assert await upload(page, site, junk) == 400
    summary = page.locator(".error-summary")
    assert await summary.is_visible()
    message = translated(
        "The file must describe an inquiry: slug, title and questions.", await language_of(page)
    )
    assert message in squash(await summary.inner_text())
    await screenshot(page, "inquiries-new-error")
    await assert_accessible(page, "inquiries-new-error")
    assert dialogs == []
