"""Studio recordings: what sox accepts, what the IVR then plays, and what goes back on delete.

Real sox and soxi (Debian's) on real files; the IVR side is checked through ``Prompts``, the
object the IVR itself asks for every path it streams."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

from callcenter.prompts import Prompt, PromptError, prompt_path
from callcenter.settings import Settings
from callcenter.voice.ivr_prompts import Prompts
from callcenter.voice.recordings import (
    RecordingRejected,
    audio_file,
    converted,
    delete_recording,
    playable_path,
    prompt_state,
    recording_info,
    recording_path,
)

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")

GREETING = Prompt("greeting", "مرحباً بكم في 1415.", "Welcome to 1415.")


def sox(target: Path, *effect: str, rate: int = 44100, channels: int = 2) -> Path:
    """A file made by sox from nothing: ``sox -n -r 44100 -c 2 x.wav synth 1 sine 440``."""
    subprocess.run(
        ["sox", "-n", "-r", str(rate), "-c", str(channels), str(target), *effect],
        check=True,
        capture_output=True,
    )
    return target


def tone(tmp: Path, seconds: float = 1.0, name: str = "tone.wav", **kw: int) -> io.BytesIO:
    return io.BytesIO(sox(tmp / name, "synth", str(seconds), "sine", "440", **kw).read_bytes())


def render_silent(prompts_dir: Path, language: str, prompt_id: str) -> Path:
    """A stand-in for the espeak-ng render (what ``callcenter prompts`` writes)."""
    path = prompt_path(prompts_dir, language, prompt_id).with_suffix(".wav")  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 800)
    return path


def leftovers(prompts_dir: Path) -> list[Path]:
    folder = prompts_dir / "recordings"
    return sorted(folder.rglob("*")) if folder.exists() else []


async def test_an_uploaded_wav_is_converted_to_8khz_mono_16bit(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    async with converted(prompts, "ar", GREETING, tone(tmp_path), uploaded_by="op@1415.ly") as rec:
        assert rec.seconds == pytest.approx(1.0, abs=0.01)
        rec.install()
    target = recording_path(prompts, "ar", "greeting")
    assert target == prompts.resolve() / "recordings" / "ar" / "greeting.wav"
    with wave.open(str(target), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == 8000
    info = recording_info(prompts, "ar", "greeting")
    assert info is not None and info.seconds == pytest.approx(1.0) and info.uploaded_by == "op@1415.ly"
    # only the recording and its note are left: no scratch folder beside them
    assert [p.name for p in leftovers(prompts)] == ["ar", "greeting.json", "greeting.wav"]


async def test_the_ivr_plays_the_recording_then_the_synthetic_voice_after_delete(tmp_path: Path) -> None:
    prompts_dir = tmp_path / "prompts"
    render_silent(prompts_dir, "ar", "greeting")
    ivr = Prompts(Settings(env="test", prompts_dir=prompts_dir))
    synthetic = str(prompt_path(prompts_dir, "ar", "greeting"))
    assert ivr.paths("ar", "greeting") == [synthetic]

    async with converted(prompts_dir, "ar", GREETING, tone(tmp_path)) as rec:
        rec.install()
    recorded = str(prompts_dir.resolve() / "recordings" / "ar" / "greeting")
    assert ivr.paths("ar", "greeting", "goodbye") == [
        recorded,
        str(prompt_path(prompts_dir, "ar", "goodbye")),
    ]
    assert ivr("ar", "greeting") == recorded  # Playback's a&b&c form too
    assert ivr.paths("en", "greeting") == [str(prompt_path(prompts_dir, "en", "greeting"))]  # per language
    assert audio_file(prompts_dir, "ar", "greeting") == Path(recorded + ".wav")

    assert delete_recording(prompts_dir, "ar", "greeting") is not None
    assert ivr.paths("ar", "greeting") == [synthetic]
    assert audio_file(prompts_dir, "ar", "greeting") == Path(synthetic + ".wav")
    assert leftovers(prompts_dir) == [prompts_dir.resolve() / "recordings" / "ar"]
    assert delete_recording(prompts_dir, "ar", "greeting") is None  # nothing left to delete


async def test_asterisk_on_another_host_gets_its_own_path_to_the_recording(tmp_path: Path) -> None:
    local, remote = tmp_path / "prompts", Path("/srv/asterisk/prompts")
    settings = Settings(env="test", prompts_dir=local, asterisk_prompts_dir=remote)
    assert Prompts(settings).paths("en", "greeting") == [str(remote / "audio" / "en" / "greeting")]
    async with converted(local, "en", GREETING, tone(tmp_path)) as rec:
        rec.install()
    assert Prompts(settings).paths("en", "greeting") == [str(remote / "recordings" / "en" / "greeting")]
    assert playable_path(local, "en", "greeting") == local.resolve() / "recordings" / "en" / "greeting"


async def test_a_text_file_renamed_wav_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    with pytest.raises(RecordingRejected) as caught:
        async with converted(prompts, "ar", GREETING, io.BytesIO(b"this is not audio\n" * 50)):
            pytest.fail("a text file must not get this far")
    assert "not audio" in caught.value.text()
    assert recording_info(prompts, "ar", "greeting") is None
    assert leftovers(prompts) == [prompts.resolve() / "recordings" / "ar"]


async def test_a_recording_longer_than_the_limit_is_refused_with_its_length(tmp_path: Path) -> None:
    with pytest.raises(RecordingRejected) as caught:
        long = tone(tmp_path, 70, rate=8000, channels=1)  # 1.1 MB: under the size limit
        async with converted(tmp_path / "p", "ar", GREETING, long):
            pass
    assert caught.value.text() == "The recording lasts 70.0 seconds; the longest allowed is 60 seconds."
    assert recording_info(tmp_path / "p", "ar", "greeting") is None


async def test_silence_and_very_short_recordings_are_refused(tmp_path: Path) -> None:
    silent = io.BytesIO(sox(tmp_path / "silent.wav", "trim", "0", "2").read_bytes())
    with pytest.raises(RecordingRejected, match="silent"):
        async with converted(tmp_path / "p", "ar", GREETING, silent):
            pass
    with pytest.raises(RecordingRejected) as caught:
        async with converted(tmp_path / "p", "ar", GREETING, tone(tmp_path, 0.1, "short.wav")):
            pass
    assert caught.value.text() == "The recording is too short: it must last at least 0.3 seconds."


async def test_an_empty_or_too_large_file_is_refused_before_sox_runs(tmp_path: Path) -> None:
    with pytest.raises(RecordingRejected, match="Choose an audio file"):
        async with converted(tmp_path / "p", "ar", GREETING, io.BytesIO(b"")):
            pass
    with pytest.raises(RecordingRejected) as caught:
        async with converted(tmp_path / "p", "ar", GREETING, tone(tmp_path), max_bytes=1024 * 1024 // 8):
            pass
    assert caught.value.text() == "The file is larger than 0.125 MB."


async def test_other_formats_sox_reads_are_accepted_by_their_content(tmp_path: Path) -> None:
    flac = io.BytesIO(
        sox(tmp_path / "x.flac", "synth", "0.5", "sine", "300", rate=16000, channels=1).read_bytes()
    )
    async with converted(tmp_path / "p", "en", GREETING, flac) as rec:
        assert rec.seconds == pytest.approx(0.5, abs=0.01)


async def test_the_state_says_synthetic_recording_or_missing_and_notices_a_changed_text(
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "prompts"
    assert prompt_state(prompts, "ar", GREETING).kind == "missing"
    render_silent(prompts, "ar", "greeting")
    assert prompt_state(prompts, "ar", GREETING).kind == "synthetic"
    async with converted(prompts, "ar", GREETING, tone(tmp_path)) as rec:
        rec.install()
    state = prompt_state(prompts, "ar", GREETING)
    assert (state.kind, state.seconds, state.text_changed) == ("recording", 1.0, False)
    edited = Prompt("greeting", "أهلاً وسهلاً بكم.", GREETING.en)
    assert prompt_state(prompts, "ar", edited).text_changed


async def test_a_block_that_fails_before_install_leaves_the_old_recording(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    async with converted(prompts, "ar", GREETING, tone(tmp_path)) as rec:
        rec.install()
    before = recording_path(prompts, "ar", "greeting").read_bytes()
    with pytest.raises(RuntimeError):
        async with converted(prompts, "ar", GREETING, tone(tmp_path, 2, "two.wav")):
            raise RuntimeError("the audit row could not be written")
    assert recording_path(prompts, "ar", "greeting").read_bytes() == before
    assert [p.name for p in leftovers(prompts)] == ["ar", "greeting.json", "greeting.wav"]


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "x\0y", "", "Greeting"])
def test_paths_are_never_built_from_a_malformed_id(tmp_path: Path, bad: str) -> None:
    with pytest.raises(PromptError):
        recording_path(tmp_path, "ar", bad)
    with pytest.raises(PromptError):
        playable_path(tmp_path, "ar", bad)


def test_the_message_is_translated_before_its_numbers_are_filled_in() -> None:
    error = RecordingRejected("{seconds} > {limit}", seconds="70.0", limit="60")
    assert error.text() == "70.0 > 60"
    assert error.text(lambda message: "«" + message + "»") == "«70.0 > 60»"
