"""Spoken descriptions of service requests: where the IVR records them, and whether a
recording holds anything worth an officer's time.

Asterisk writes the file (``RECORD FILE``) under ``<recordings dir>/requests/`` as the
Asterisk host sees it (``asterisk_recordings_path``); the engine reads it under
``recordings_path``. The request stores only ``requests/<name>.wav`` (``recording_path``), a
name made here from a random id, never from what a caller sent; the pages resolve it inside
the recordings directory (``web.pages.requests.recording_file``) and serve it to officers
and agents. These files sit in a folder of their own, so the call recordings' retention
(``desk.recordings.delete_expired``, which deletes only the files directly in the directory)
never removes a request's description while the request is being worked.

A recording is judged on its audio, not on how it ended: the share of 20 ms windows louder
than ``VOICE_RMS`` (about -44 dBFS) is what the caller said. None of it is ``silent``; less
than ``MIN_SPOKEN_S`` is ``too_short`` (a cough, a breath, a key pressed at once).

Usage::

    name = new_name()                                  # "req-3f0c….wav"
    await call.record_file(asterisk_file(settings, name), ...)
    verdict = judge(local_file(settings, name))        # Verdict("ok", 6.2)
    Intake(..., recording_path=stored(name))
"""

from __future__ import annotations

import array
import math
import sys
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from callcenter.settings import Settings

FOLDER: Final = "requests"
MIN_SPOKEN_S: Final = 1.0
VOICE_RMS: Final = 200.0


@dataclass(frozen=True, slots=True)
class Verdict:
    problem: str  # "" | missing | silent | too_short
    spoken_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problem


def new_name() -> str:
    return f"req-{uuid.uuid4().hex}.wav"


def stored(name: str) -> str:
    """What the request keeps (``recording_path``): relative to the recordings directory."""
    return f"{FOLDER}/{name}"


def local_file(settings: Settings, name: str) -> Path:
    return settings.recordings_path / FOLDER / name


def asterisk_file(settings: Settings, name: str) -> str:
    """The path ``RECORD FILE`` takes: as Asterisk sees it, without the extension."""
    return str(settings.asterisk_recordings_path / FOLDER / name.removesuffix(".wav"))


def prepare(settings: Settings) -> None:
    """The folder, where this process sees it (Asterisk does not make folders)."""
    (settings.recordings_path / FOLDER).mkdir(parents=True, exist_ok=True)


def judge(path: Path) -> Verdict:
    """Whether the recording at ``path`` holds speech (8 kHz mono 16-bit WAV, as Asterisk
    writes ``wav``)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                return Verdict("missing")
            rate = wav.getframerate()
            samples = array.array("h", wav.readframes(wav.getnframes()))
    except (OSError, EOFError, wave.Error):
        return Verdict("missing")
    if sys.byteorder == "big":
        samples.byteswap()
    window = max(1, rate // 50)
    loud = 0
    for start in range(0, len(samples) - window + 1, window):
        chunk = samples[start : start + window]
        if math.sqrt(sum(s * s for s in chunk) / window) >= VOICE_RMS:
            loud += 1
    spoken = loud * window / rate
    if loud == 0:
        return Verdict("silent")
    if spoken < MIN_SPOKEN_S:
        return Verdict("too_short", spoken)
    return Verdict("", spoken)


def discard(path: Path) -> None:
    """A recording not kept (silent, too short): nobody will ever listen to it."""
    path.unlink(missing_ok=True)
