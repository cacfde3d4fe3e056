"""What a waiting caller is told, as prompt ids: correct Arabic counted nouns and ordinals,
English from plain numbers, every id in the catalogue; and the Dial line that rings an agent."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import pytest

from callcenter.arabic_numbers import MAX_ORDINAL
from callcenter.prompts import Prompt, load_catalogue, render
from callcenter.settings import Settings
from callcenter.voice.queue_prompts import MAX_MINUTES, announcement_ids, position_ids, wait_ids
from callcenter.voice.to_agent import dial_args, queue_for_key


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Prompt]:
    return load_catalogue()


def said(catalogue: dict[str, Prompt], ids: list[str], language: str = "ar") -> str:
    return " ".join(catalogue[i].ar if language == "ar" else catalogue[i].en for i in ids)


def test_third_in_line_and_eleven_minutes_in_arabic(catalogue: dict[str, Prompt]) -> None:
    ids = announcement_ids("ar", position=3, wait_s=620.0)  # 10 min 20 s: "about 11 minutes"
    assert ids == [
        "position-you-are", "ord-3", "position-in-line", "wait-expected", "num-11-f", "noun-minute",
    ]  # fmt: skip
    assert said(catalogue, ids) == (
        "أنت المتصل الثالث في قائمة الانتظار. مدة الانتظار المتوقعة إحدى عشرة دقيقة"
    )


def test_the_same_in_english(catalogue: dict[str, Prompt]) -> None:
    ids = announcement_ids("en", position=3, wait_s=620.0)
    assert (
        said(catalogue, ids, "en")
        == "You are caller number three in line. The expected wait is eleven minutes"
    )


@pytest.mark.parametrize(
    ("minutes", "arabic"),
    [
        (1, "دقيقة واحدة"),
        (2, "دقيقتان"),
        (3, "ثلاث دقائق"),
        (8, "ثماني دقائق"),
        (10, "عشر دقائق"),
        (11, "إحدى عشرة دقيقة"),
        (21, "إحدى وعشرون دقيقة"),
        (60, "ستون دقيقة"),
    ],
)
def test_minutes_take_the_counted_noun_arabic_needs(
    catalogue: dict[str, Prompt], minutes: int, arabic: str
) -> None:
    [head, *phrase] = wait_ids("ar", minutes * 60.0)
    assert head == "wait-expected"
    assert said(catalogue, phrase) == arabic


def test_english_minutes(catalogue: dict[str, Prompt]) -> None:
    assert said(catalogue, wait_ids("en", 30.0), "en") == "The expected wait is one minute"
    assert said(catalogue, wait_ids("en", 1500.0), "en") == "The expected wait is twenty five minutes"


@pytest.mark.parametrize(("position", "arabic"), [(2, "الثاني"), (11, "الحادي عشر"), (21, "الحادي والعشرون")])
def test_positions_are_masculine_ordinals(catalogue: dict[str, Prompt], position: int, arabic: str) -> None:
    assert said(catalogue, position_ids("ar", position)) == f"أنت المتصل {arabic} في قائمة الانتظار."


def test_the_first_in_line_is_next_and_no_estimate_is_said_as_such() -> None:
    assert position_ids("ar", 1) == ["you-are-next"]
    assert wait_ids("ar", None) == ["no-agent-now"] == wait_ids("en", None)
    assert announcement_ids("ar", position=1, wait_s=None) == ["you-are-next", "no-agent-now"]
    assert wait_ids("ar", MAX_MINUTES * 60.0 + 1) == ["wait-over-an-hour"]
    assert position_ids("ar", MAX_ORDINAL + 1) == []


def test_every_announcement_is_in_the_catalogue(catalogue: dict[str, Prompt]) -> None:
    used: set[str] = set()
    for language in ("ar", "en"):
        for position in range(1, MAX_ORDINAL + 2):
            used |= set(position_ids(language, position))  # type: ignore[arg-type]
        for seconds in range(0, (MAX_MINUTES + 2) * 60, 30):
            used |= set(wait_ids(language, float(seconds)))  # type: ignore[arg-type]
    assert used - catalogue.keys() == set()


def test_dial_rings_the_endpoint_with_the_ring_timeout_and_the_answer_gosub() -> None:
    assert dial_args("PJSIP/agent101", 20.0, "ab12", "7") == "PJSIP/agent101,20,U(agent-answered^ab12^7)"
    assert dial_args("agent102", 12.2, "e", "8") == "PJSIP/agent102,13,U(agent-answered^e^8)"


def test_menu_keys_map_to_queues_by_settings() -> None:
    settings = Settings(queue_for_key_0="people", queue_for_key_2="")
    assert (queue_for_key(settings, "0"), queue_for_key(settings, "2"), queue_for_key(settings, "1")) == (
        "people", None, None,
    )  # fmt: skip


async def test_hold_music_is_made_by_sox(catalogue: dict[str, Prompt], tmp_path: Path) -> None:
    if not (shutil.which("sox") and shutil.which("espeak-ng")):
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng and sox are required in CI")
        pytest.skip("sox / espeak-ng not installed (apt install espeak-ng sox)")
    hold = catalogue["hold-music"]
    assert hold.sox
    report = await render(tmp_path, {"hold-music": hold})
    assert report.ok, report.failed
    for language in ("ar", "en"):
        with wave.open(str(tmp_path / "audio" / language / "hold-music.wav")) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
            assert 1.5 <= wav.getnframes() / 8000 <= 3.0  # a short piece: the loop reacts between
    again = await render(tmp_path, {"hold-music": hold})
    assert again.rendered == [] and len(again.skipped) == 2
