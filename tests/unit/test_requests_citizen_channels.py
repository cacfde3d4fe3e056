"""The pure parts of the citizen channels of service requests: the SMS texts admins edit,
what an SMS is (a request, a reference), whether a recording holds speech, and RECORD FILE
as the simulated Asterisk answers it."""

from __future__ import annotations

import array
import math
import wave
from pathlib import Path

import pytest

from callcenter.requests.catalogue import parse as parse_catalogue
from callcenter.requests.citizen_texts import TextsFileError, citizen_texts, defaults, parse
from callcenter.requests.recordings import judge
from callcenter.requests.sms_intake import category_of, choices, reference_text, started
from callcenter.settings import Settings
from callcenter.sim import HangUp, Press, Silence
from callcenter.sim.agi_client import SimAgiChannel
from callcenter.sim.citizen import Caller
from callcenter.sim.core import SimChannel

SAMPLE = Path(__file__).parents[2] / "callcenter" / "samples" / "requests.yaml"


# -- the texts ------------------------------------------------------------------------------------


def test_every_default_text_is_in_both_languages_with_the_same_placeholders() -> None:
    texts = defaults()
    for kind, pair in texts.texts.items():
        assert set(pair) == {"ar", "en"}, kind
    said = texts.say("created", "ar", reference="1415-4217-0393", category="إنارة", due="2026-03-17")
    assert "1415-4217-0393" in said and "2026-03-17" in said


def test_an_override_file_changes_one_text_and_keeps_the_others(tmp_path: Path) -> None:
    (tmp_path / "request_texts.yaml").write_text(
        'texts:\n  fixed_thanks: {ar: "شكراً {reference}", en: "Thanks {reference}"}\n', encoding="utf-8"
    )
    texts = citizen_texts(Settings(env="test", data_dir=tmp_path))
    assert texts.say("fixed_thanks", "en", reference="R") == "Thanks R"
    assert texts.say("reopened", "en", reference="R") == defaults().say("reopened", "en", reference="R")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('texts:\n  fixed_thanks: {ar: "شكراً {refrence}", en: "x"}\n', "unknown placeholder"),
        ('texts:\n  fixed_thanks: {ar: "شكراً"}\n', "Arabic and English"),
        ('texts:\n  nosuch: {ar: "ا", en: "a"}\n', "no such text"),
        ("texts: [1, 2]\n", "maps a name"),
        ("other: {}\n", "two mappings"),
    ],
)
def test_a_bad_override_is_refused_whole(text: str, problem: str) -> None:
    with pytest.raises(TextsFileError, match=problem):
        parse(text, defaults=defaults())


def test_a_bad_override_file_leaves_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "request_texts.yaml").write_text('texts:\n  fixed_thanks: {ar: "{x}", en: "{x}"}\n')
    assert citizen_texts(Settings(env="test", data_dir=tmp_path)) is defaults()


# -- what an SMS is -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("طلب عمود إنارة معطل", ("ar", "عمود إنارة معطل")),
        ("طَلَب: حفرة", ("ar", "حفرة")),
        ("REQUEST broken light", ("en", "broken light")),
        ("request", ("en", "")),
        ("  Request - leak ", ("en", "leak")),
        ("طلبات كثيرة", None),
        ("my request", None),
        ("", None),
    ],
)
def test_a_request_starts_with_its_keyword(body: str, expected: tuple[str, str] | None) -> None:
    assert started(body) == expected


@pytest.mark.parametrize(
    ("body", "in_inquiry", "expected"),
    [
        ("4217-0393", False, "42170393"),
        ("١٤١٥-٤٢١٧-٠٣٩٣", False, "141542170393"),
        ("١٤١٥-٤٢١٧-٠٣٩٣", True, "141542170393"),
        ("42170393", True, None),  # answering an inquiry: eight digits may be a number answer
        ("4", False, None),
        ("1415 42", False, None),  # too short to be one: left to the inquiry side
        ("call me 42170393", False, None),
    ],
)
def test_a_reference_is_a_message_of_its_digits(body: str, in_inquiry: bool, expected: str | None) -> None:
    assert reference_text(body, in_inquiry=in_inquiry) == expected


def test_a_category_by_its_number_in_any_script_or_its_name() -> None:
    catalogue = parse_catalogue(SAMPLE.read_text(encoding="utf-8"))
    assert category_of(catalogue, "٣") is not None and category_of(catalogue, "٣").key == "water_leak"  # type: ignore[union-attr]
    assert category_of(catalogue, "03") == catalogue.by_keypad("3")
    assert category_of(catalogue, "Street lighting") == catalogue.by_keypad("1")
    assert category_of(catalogue, "99") is None
    assert choices(catalogue, "en").startswith("1 Street lighting, 2 ")


# -- recordings -----------------------------------------------------------------------------------


def _wav(path: Path, *, tone_ms: int, silence_ms: int, amplitude: int = 8000) -> Path:
    tone = [int(amplitude * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8 * tone_ms)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(array.array("h", tone + [0] * (8 * silence_ms)).tobytes())
    return path


def test_a_recording_is_judged_on_its_audio(tmp_path: Path) -> None:
    assert judge(_wav(tmp_path / "a.wav", tone_ms=3000, silence_ms=4000)).ok
    assert judge(_wav(tmp_path / "b.wav", tone_ms=0, silence_ms=4000)).problem == "silent"
    assert judge(_wav(tmp_path / "c.wav", tone_ms=3000, silence_ms=0, amplitude=20)).problem == "silent"
    assert judge(_wav(tmp_path / "d.wav", tone_ms=400, silence_ms=4000)).problem == "too_short"
    assert judge(tmp_path / "missing.wav").problem == "missing"
    (tmp_path / "e.wav").write_bytes(b"not a wav")
    assert judge(tmp_path / "e.wav").problem == "missing"


# -- RECORD FILE in the simulator ---------------------------------------------------------------


def _channel(caller: Caller) -> SimAgiChannel:
    return SimAgiChannel(SimChannel("PJSIP/c-1", "1.1", "", "inbound-1415", "1415"), [], caller=caller)


async def test_record_file_speech_then_hash(tmp_path: Path) -> None:
    call = _channel(Caller((Press("#", after_ms=2000),)))
    reply = await call.handle(f'RECORD FILE {tmp_path}/r wav "#" 60000 BEEP s=4')
    assert reply.lines == ("200 result=35 (dtmf) endpos=16000",)
    assert judge(tmp_path / "r.wav").ok


async def test_record_file_silence_ends_on_the_silence_limit(tmp_path: Path) -> None:
    call = _channel(Caller((Silence(),)))
    reply = await call.handle(f'RECORD FILE {tmp_path}/r wav "#" 60000 BEEP s=4')
    assert reply.lines == ("200 result=0 (timeout) endpos=32000",)
    assert judge(tmp_path / "r.wav").problem == "silent"


async def test_record_file_hang_up_and_a_missing_folder(tmp_path: Path) -> None:
    call = _channel(Caller((HangUp(after_ms=1000),)))
    assert (await call.handle(f'RECORD FILE {tmp_path}/r wav "#" 60000')).lines == (
        "200 result=-1 (hangup) endpos=8000",
    )
    other = _channel(Caller((Press("#", after_ms=1000),)))
    assert (await other.handle(f'RECORD FILE {tmp_path}/no/r wav "#" 60000')).lines == (
        "200 result=-1 (writefile)",
    )
    assert (await other.handle("RECORD FILE x wav")).code == 520
