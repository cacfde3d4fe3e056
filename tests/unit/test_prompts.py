"""The prompt catalogue is complete, numbers compose from it, and rendering gives Asterisk WAVs."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path
from typing import NoReturn

import pytest

from callcenter import prompts
from callcenter.inquiry.schema import parse_inquiry_yaml
from callcenter.prompts import (
    Prompt,
    PromptError,
    PromptToolMissing,
    compose_digits,
    compose_number,
    inquiry_prompts,
    load_catalogue,
    option_prompt_id,
    prompt_path,
    question_prompt_id,
    render,
)

SAMPLE_INQUIRY = Path(prompts.__file__).parent / "samples" / "return-of-life.yaml"
#: What the IVR menus and flows need, at least.
REQUIRED = {
    "greeting", "for-english", "main-menu", "invalid-input", "no-input", "goodbye",
    "agents-busy", "callback-stored", "enter-reference", "request-status-is", "status-received",
    "status-in-progress", "status-completed", "thank-you-answering", "press-star-to-repeat",
    "rating-hint", "yes-no-hint", "choice-hint", "option", "please-hold", "key-star", "key-hash",
    *(f"num-{n}" for n in [*range(21), *range(30, 101, 10)]),
}  # fmt: skip


def tools_missing(reason: str) -> NoReturn:
    """Skip on a developer machine without the tools; on CI (CI=true) that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the tools must be installed)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Prompt]:
    return load_catalogue()


def test_catalogue_has_every_prompt_in_both_languages(catalogue: dict[str, Prompt]) -> None:
    assert catalogue.keys() >= REQUIRED, REQUIRED - catalogue.keys()
    for prompt_id, prompt in catalogue.items():
        assert prompt.id == prompt_id
        assert prompt.ar.strip() and prompt.en.strip(), prompt_id


def test_arabic_texts_are_arabic(catalogue: dict[str, Prompt]) -> None:
    """Only the English hint of the Arabic flow is written (and spoken) in English."""
    english_on_purpose = {"for-english"}
    for prompt in catalogue.values():
        voice = prompts.voice_for(prompt.ar, "ar")
        assert (voice == "en") == (prompt.id in english_on_purpose), prompt.id
        assert prompts.voice_for(prompt.en, "en") == "en", prompt.id


def test_greeting_offers_english_on_9(catalogue: dict[str, Prompt]) -> None:
    assert "1415" in catalogue["greeting"].ar
    assert "9" in catalogue["for-english"].ar


@pytest.mark.parametrize("language", ["ar", "en"])
def test_compose_number_covers_0_to_1000(catalogue: dict[str, Prompt], language: str) -> None:
    for n in [*range(1001), 1005, 2345, 3000, 11000, 100_000, 123_456, 999_999]:
        ids = compose_number(n, language)  # type: ignore[arg-type]
        assert ids, n
        assert set(ids) <= catalogue.keys(), (n, set(ids) - catalogue.keys())


def spoken(catalogue: dict[str, Prompt], n: int, language: str) -> str:
    ids = compose_number(n, language)  # type: ignore[arg-type]
    return " ".join(catalogue[i].text(language) for i in ids)  # type: ignore[arg-type]


def test_compose_number_word_order(catalogue: dict[str, Prompt]) -> None:
    assert compose_number(45, "ar") == ["num-5", "num-and-40"]
    assert spoken(catalogue, 45, "ar") == "خمسة وأربعون"
    assert spoken(catalogue, 345, "ar") == "ثلاثمئة وخمسة وأربعون"
    assert spoken(catalogue, 2012, "ar") == "ألفان واثنا عشر"
    assert spoken(catalogue, 3000, "ar") == "ثلاثة آلاف"
    assert spoken(catalogue, 15_000, "ar") == "خمسة عشر ألفاً"
    assert compose_number(345, "en") == ["num-300", "num-and-40", "num-5"]
    assert spoken(catalogue, 345, "en") == "three hundred and forty five"
    assert spoken(catalogue, 1005, "en") == "one thousand and five"
    assert spoken(catalogue, 21, "en") == "twenty one"
    assert compose_number(0, "ar") == ["num-0"]


@pytest.mark.parametrize("bad", [-1, 1_000_000, 2.5, True])
def test_compose_number_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        compose_number(bad, "ar")  # type: ignore[arg-type]


def test_compose_digits(catalogue: dict[str, Prompt]) -> None:
    ids = compose_digits("+218 91-2*#")
    assert ids == ["num-2", "num-1", "num-8", "num-9", "num-1", "num-2", "key-star", "key-hash"]
    assert set(ids) <= catalogue.keys()
    with pytest.raises(ValueError):
        compose_digits("12a")


def test_prompt_path_is_absolute_without_extension(tmp_path: Path) -> None:
    path = prompt_path(Path("prompts"), "ar", "greeting")
    assert path.is_absolute() and path.suffix == ""
    assert path.parts[-3:] == ("audio", "ar", "greeting")
    with pytest.raises(PromptError):
        prompt_path(tmp_path, "ar", "../etc/passwd")
    with pytest.raises(PromptError):
        prompt_path(tmp_path, "fr", "greeting")  # type: ignore[arg-type]


def test_inquiry_prompts_cover_questions_and_options() -> None:
    inquiry = parse_inquiry_yaml(SAMPLE_INQUIRY.read_text(encoding="utf-8")).definition()
    extra = inquiry_prompts(inquiry)
    slug = inquiry.slug
    for question in inquiry.questions:
        prompt = extra[question_prompt_id(slug, question.key)]
        assert prompt.ar == question.text.ar
        for n, option in enumerate(question.options, 1):
            assert extra[option_prompt_id(slug, question.key, n)].en == option.label.get("en")
    assert extra[f"q-{slug}-_intro"].ar == inquiry.intro.ar
    assert f"q-{slug}-problem-opt4" in extra


def write_catalogue(path: Path, body: str) -> Path:
    path.write_text("prompts:\n" + body, encoding="utf-8")
    return path


def test_catalogue_errors(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no en text"):
        load_catalogue(write_catalogue(tmp_path / "a.yaml", "  hello: {ar: مرحبا}\n"))
    with pytest.raises(PromptError, match="twice"):
        load_catalogue(write_catalogue(tmp_path / "b.yaml", "  a: {ar: ا, en: a}\n  a: {ar: ب, en: b}\n"))
    with pytest.raises(PromptError, match="lowercase"):
        load_catalogue(write_catalogue(tmp_path / "c.yaml", "  Hello: {ar: ا, en: a}\n"))


# -- rendering (espeak-ng + sox) -----------------------------------------------------------------


@pytest.fixture
def tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        tools_missing(f"{' and '.join(missing)} not installed (apt-get install espeak-ng sox)")


def assert_asterisk_wav(path: Path) -> None:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 8000
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getnframes() > 8000 * 0.2  # at least 0.2 s of speech


async def test_render_writes_8khz_mono_wavs_once(
    tools: None, tmp_path: Path, catalogue: dict[str, Prompt]
) -> None:
    subset = {k: catalogue[k] for k in ("greeting", "for-english", "num-7")}
    extra = {"q-demo-ok": Prompt("q-demo-ok", "هل أنت راضٍ؟", "Are you satisfied?")}

    report = await render(tmp_path, subset, extra=extra)
    assert report.ok, str(report)
    assert sorted(report.rendered) == sorted(
        f"{lang}/{pid}" for lang in ("ar", "en") for pid in [*subset, *extra]
    )
    for key in report.rendered:
        language, prompt_id = key.split("/")
        assert_asterisk_wav(prompt_path(tmp_path, language, prompt_id).with_suffix(".wav"))  # type: ignore[arg-type]

    again = await render(tmp_path, subset, extra=extra)
    assert again.rendered == [] and len(again.skipped) == len(report.rendered)

    changed = {**subset, "num-7": Prompt("num-7", "سبعة.", "seven.")}
    third = await render(tmp_path, changed, extra=extra)
    assert sorted(third.rendered) == ["ar/num-7", "en/num-7"]

    forced = await render(tmp_path, subset, languages=["ar"], force=True)
    assert sorted(forced.rendered) == sorted(f"ar/{pid}" for pid in subset)


async def test_render_without_tools_says_what_is_missing(
    tmp_path: Path, catalogue: dict[str, Prompt], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PromptToolMissing, match="espeak-ng and sox"):
        await render(tmp_path, {"num-1": catalogue["num-1"]})
