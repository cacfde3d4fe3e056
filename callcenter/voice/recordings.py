"""Studio recordings of the voice prompts: checked, converted for Asterisk, preferred by the IVR.

Usage::

    prompt = await find_prompt(session, settings.prompts_dir, "greeting")   # NotFound if unknown
    async with converted(settings.prompts_dir, "ar", prompt, upload.file) as recording:
        audit(session, ..., seconds=recording.seconds)                      # RecordingRejected above
        await session.flush()
        recording.install()                                                 # the IVR plays it now
    playable_path(settings.prompts_dir, "ar", "greeting")                   # what STREAM FILE gets
    delete_recording(settings.prompts_dir, "ar", "greeting")                # the espeak voice again

A recording is kept at ``<prompts_dir>/recordings/<language>/<id>.wav`` in the format of the
rendered prompts (8 kHz mono 16-bit PCM, which Asterisk plays without transcoding), with a
small ``<id>.json`` beside it: its length and the text it was recorded for, so that a page can
say when the catalogue text has changed since. The rendered files under ``audio/`` are never
touched: deleting the recording is enough to hear the synthetic voice again. The level is the
studio's own; only the format is changed.

Paths are only ever built from a prompt id that :func:`find_prompt` found in the catalogue or
in an inquiry, and a language of :data:`LANGUAGES`; never from what a request sent.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import wave
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from callcenter import models
from callcenter.errors import CallCenterError, NotFound
from callcenter.inquiries import to_definition
from callcenter.inquiry.definition import LANGUAGES, InquiryStatus, Language
from callcenter.messages import N_
from callcenter.prompts import Prompt, inquiry_prompts, load_catalogue, prompt_path

RECORDINGS = "recordings"
MAX_BYTES = 10 * 1024 * 1024
MAX_SECONDS = 60.0
MIN_SECONDS = 0.3
#: Below this peak (about -60 dBFS of 16-bit audio) a recording counts as silence.
SILENCE_PEAK = 33
#: sox and soxi get this long per file; a 10 MB file takes well under a second.
TOOL_TIMEOUT_S = 60.0
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,199}$")
_COPY_CHUNK = 1024 * 1024


class RecordingRejected(CallCenterError):
    """An upload that cannot become a prompt: not audio, too long, silent... The message is a
    message id with ``{placeholders}`` filled from ``details`` once translated."""

    status_code = 422
    error_id = "recording_rejected"

    def text(self, translate: Callable[[str], str] | None = None) -> str:
        """The message in the reader's language (``translate``: the web app's gettext)."""
        template = translate(self.message) if translate is not None else self.message
        return template.format(**self.details)


class RecordingToolMissing(CallCenterError):
    """sox is not installed: the server cannot convert recordings."""

    status_code = 503
    error_id = "recording_tool_missing"


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What the sidecar ``<id>.json`` remembers of a recording."""

    seconds: float | None
    text_digest: str
    uploaded_at: str = ""
    uploaded_by: str = ""


@dataclass(frozen=True, slots=True)
class PromptState:
    """What the IVR plays for one prompt in one language: ``recording`` (a studio file),
    ``synthetic`` (the espeak-ng render) or ``missing`` (nothing rendered yet)."""

    kind: str
    seconds: float | None = None
    text_changed: bool = False  # the recording was made for another text


@dataclass(frozen=True, slots=True)
class PromptEntry:
    """A prompt as the prompts page lists it: from the catalogue, or from an inquiry."""

    prompt: Prompt
    inquiry_slug: str | None = None
    inquiry_title: str = ""


# -- where the IVR finds a prompt -------------------------------------------------------------


def recording_path(prompts_dir: Path, language: Language, prompt_id: str) -> Path:
    """``<prompts_dir>/recordings/<language>/<id>.wav`` (id and language checked first)."""
    prompt_path(prompts_dir, language, prompt_id)  # raises PromptError for a bad id or language
    return (prompts_dir / RECORDINGS / language / f"{prompt_id}.wav").resolve()


def playable_path(prompts_dir: Path, language: Language, prompt_id: str, *, root: Path | None = None) -> Path:
    """The path without extension that the IVR hands to STREAM FILE / GET DATA: the studio
    recording when ``prompts_dir`` has one, else the rendered prompt. ``root`` is where
    Asterisk sees ``prompts_dir`` (``asterisk_prompts_dir``); the check is made locally."""
    root = root or prompts_dir
    if recording_path(prompts_dir, language, prompt_id).is_file():
        return (root / RECORDINGS / language / prompt_id).resolve()
    return prompt_path(root, language, prompt_id)


def audio_file(prompts_dir: Path, language: Language, prompt_id: str) -> Path | None:
    """The WAV file the IVR plays for this prompt, or None when nothing is rendered yet."""
    path = playable_path(prompts_dir, language, prompt_id).with_suffix(".wav")
    return path if path.is_file() else None


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def recording_info(prompts_dir: Path, language: Language, prompt_id: str) -> RecordingInfo | None:
    """The recording's sidecar, or None without a recording (an empty one if it was lost)."""
    wav = recording_path(prompts_dir, language, prompt_id)
    if not wav.is_file():
        return None
    with contextlib.suppress(OSError, ValueError, TypeError):
        data = json.loads(wav.with_suffix(".json").read_text(encoding="utf-8"))
        seconds = data.get("seconds")
        return RecordingInfo(
            seconds=float(seconds) if isinstance(seconds, int | float) else None,
            text_digest=str(data.get("text_digest", "")),
            uploaded_at=str(data.get("uploaded_at", "")),
            uploaded_by=str(data.get("uploaded_by", "")),
        )
    return RecordingInfo(seconds=None, text_digest="")


def prompt_state(prompts_dir: Path, language: Language, prompt: Prompt) -> PromptState:
    info = recording_info(prompts_dir, language, prompt.id)
    if info is not None:
        changed = bool(info.text_digest) and info.text_digest != text_digest(prompt.text(language))
        return PromptState("recording", info.seconds, changed)
    if prompt_path(prompts_dir, language, prompt.id).with_suffix(".wav").is_file():
        return PromptState("synthetic")
    return PromptState("missing")


# -- which prompts exist ------------------------------------------------------------------------


def catalogue(prompts_dir: Path) -> dict[str, Prompt]:
    """The catalogue the renderer uses: ``<prompts_dir>/catalogue.yaml`` wins over the one in
    the source tree (as in :func:`callcenter.prompts.render_all`)."""
    local = prompts_dir / "catalogue.yaml"
    path = local if local.is_file() else None
    try:
        stamp = (path or _default_catalogue()).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _catalogue(path, stamp)


def _default_catalogue() -> Path:
    from callcenter.prompts import DEFAULT_CATALOGUE

    return DEFAULT_CATALOGUE


@lru_cache(maxsize=8)
def _catalogue(path: Path | None, stamp: int) -> dict[str, Prompt]:
    del stamp  # part of the cache key: an edited catalogue is read again
    return load_catalogue(path)


async def find_prompt(session: AsyncSession, prompts_dir: Path, prompt_id: str) -> Prompt:
    """The catalogue prompt or inquiry prompt (question, option, intro, thanks) with this id,
    of an inquiry in any status; :class:`NotFound` for anything else, malformed ids included."""
    if not isinstance(prompt_id, str) or not _ID.match(prompt_id):
        raise NotFound(N_("There is no such voice prompt."))
    found = catalogue(prompts_dir).get(prompt_id)
    if found is not None:
        return found
    if prompt_id.startswith("q-"):
        # q-<slug>-<key>...: the slug ends at one of the dashes; ask for every candidate at once
        candidates = {prompt_id[2:i] for i, char in enumerate(prompt_id) if char == "-" and i > 2}
        for entry in await _inquiry_entries(session, slugs=candidates):
            if entry.prompt.id == prompt_id:
                return entry.prompt
    raise NotFound(N_("There is no such voice prompt."))


async def list_prompts(session: AsyncSession, prompts_dir: Path) -> list[PromptEntry]:
    """Every catalogue prompt, then the prompts of each inquiry that is not closed (oldest
    first). Open inquiries are few at any time, so they are read whole."""
    entries = [PromptEntry(prompt) for prompt in catalogue(prompts_dir).values()]
    return entries + await _inquiry_entries(session, open_only=True)


async def _inquiry_entries(
    session: AsyncSession, *, slugs: Iterable[str] | None = None, open_only: bool = False
) -> list[PromptEntry]:
    query = select(models.Inquiry).order_by(col(models.Inquiry.id))
    if slugs is not None:
        wanted = sorted(slugs)
        if not wanted:
            return []
        query = query.where(col(models.Inquiry.slug).in_(wanted))
    if open_only:
        query = query.where(col(models.Inquiry.status) != InquiryStatus.CLOSED.value)
    rows = list((await session.execute(query)).scalars())
    if not rows:
        return []
    questions: dict[int, list[models.Question]] = {row.id: [] for row in rows if row.id is not None}
    found = await session.execute(
        select(models.Question)
        .where(col(models.Question.inquiry_id).in_(list(questions)))
        .order_by(col(models.Question.inquiry_id), col(models.Question.position))
    )
    for question in found.scalars():
        questions[question.inquiry_id].append(question)
    entries: list[PromptEntry] = []
    for row in rows:
        assert row.id is not None
        inquiry = to_definition(row, questions[row.id])
        for prompt in inquiry_prompts(inquiry).values():
            entries.append(PromptEntry(prompt, inquiry.slug, row.title_ar))
    return entries


def parse_language(value: str) -> Language:
    """A language of the voice line, or :class:`NotFound` (it is part of a URL)."""
    for language in LANGUAGES:
        if value == language:
            return language
    raise NotFound(N_("There is no such voice prompt."))


# -- storing and deleting -----------------------------------------------------------------------


@dataclass(slots=True)
class ConvertedRecording:
    """A checked, converted upload waiting in the recordings folder; :meth:`install` puts it
    in place (atomically), otherwise it is thrown away when the ``converted`` block ends."""

    target: Path
    scratch: Path
    seconds: float
    info: RecordingInfo
    installed: bool = False

    def install(self) -> None:
        sidecar = self.target.with_suffix(".json")
        note = self.scratch.with_name("info.json")
        note.write_text(
            json.dumps(
                {
                    "seconds": self.info.seconds,
                    "text_digest": self.info.text_digest,
                    "uploaded_at": self.info.uploaded_at,
                    "uploaded_by": self.info.uploaded_by,
                },
                ensure_ascii=False,
            )
            + "\n",
            encoding="utf-8",
        )
        os.replace(note, sidecar)
        os.replace(self.scratch, self.target)
        self.installed = True


@contextlib.asynccontextmanager
async def converted(
    prompts_dir: Path,
    language: Language,
    prompt: Prompt,
    source: IO[bytes],
    *,
    uploaded_by: str = "",
    max_bytes: int = MAX_BYTES,
    max_seconds: float = MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
) -> AsyncIterator[ConvertedRecording]:
    """Read ``source`` (at most ``max_bytes``), check it with soxi, convert it with sox to
    8 kHz mono 16-bit PCM and check the result (length, silence). Raises
    :class:`RecordingRejected` with a message for the person who uploaded it."""
    sox, soxi = _tools()
    target = recording_path(prompts_dir, language, prompt.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".upload-", dir=target.parent) as tmp:
        upload = Path(tmp) / "upload"  # no extension: sox tells the format by its content
        final = Path(tmp) / "final.wav"
        size = await asyncio.to_thread(_copy, source, upload, max_bytes)
        if size == 0:
            raise RecordingRejected(N_("Choose an audio file to upload."))
        if size > max_bytes:
            raise RecordingRejected(
                N_("The file is larger than {limit} MB."), limit=f"{max_bytes / (1024 * 1024):g}"
            )
        code, out = await _run(soxi, "-D", str(upload))
        if code != 0:
            raise RecordingRejected(
                N_("This file is not audio that can be read. Upload a WAV, FLAC or Ogg file.")
            )
        _check_length(_seconds(out), max_seconds=max_seconds, min_seconds=0.0)
        code, out = await _run(
            sox, "-V1", str(upload), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(final)
        )
        if code != 0 or not final.is_file():
            raise RecordingRejected(N_("The audio could not be converted for the telephone."), reason=out)
        seconds, peak = await asyncio.to_thread(_measure, final)
        _check_length(seconds, max_seconds=max_seconds, min_seconds=min_seconds)
        if peak < SILENCE_PEAK:
            raise RecordingRejected(N_("The recording is silent."))
        info = RecordingInfo(
            seconds=round(seconds, 2),
            text_digest=text_digest(prompt.text(language)),
            uploaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            uploaded_by=uploaded_by,
        )
        yield ConvertedRecording(target=target, scratch=final, seconds=info.seconds or 0.0, info=info)


def delete_recording(prompts_dir: Path, language: Language, prompt_id: str) -> RecordingInfo | None:
    """Remove the recording (the IVR plays the rendered prompt again); what it was, or None."""
    info = recording_info(prompts_dir, language, prompt_id)
    if info is None:
        return None
    wav = recording_path(prompts_dir, language, prompt_id)
    wav.unlink(missing_ok=True)
    wav.with_suffix(".json").unlink(missing_ok=True)
    return info


def _check_length(seconds: float, *, max_seconds: float, min_seconds: float) -> None:
    if seconds > max_seconds + 0.05:
        raise RecordingRejected(
            N_("The recording lasts {seconds} seconds; the longest allowed is {limit} seconds."),
            seconds=f"{seconds:.1f}",
            limit=f"{max_seconds:g}",
        )
    if seconds < min_seconds:
        raise RecordingRejected(
            N_("The recording is too short: it must last at least {limit} seconds."),
            limit=f"{min_seconds:g}",
        )


def _seconds(text: str) -> float:
    try:
        return float(text.strip().splitlines()[0])
    except (ValueError, IndexError):
        return 0.0  # an unknown length: the converted file is measured anyway


def _copy(source: IO[bytes], target: Path, limit: int) -> int:
    """Copy at most ``limit + 1`` bytes (one more says "too large"); the count copied."""
    with contextlib.suppress(OSError, ValueError):
        source.seek(0)
    copied = 0
    with target.open("wb") as out:
        while copied <= limit:
            chunk = source.read(min(_COPY_CHUNK, limit + 1 - copied))
            if not chunk:
                break
            out.write(chunk)
            copied += len(chunk)
    return copied


def _measure(path: Path) -> tuple[float, int]:
    """Length in seconds and peak sample of a converted (8 kHz mono 16-bit) file."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, 8000):
            raise RecordingRejected(N_("The audio could not be converted for the telephone."))
        frames = wav.getnframes()
        samples = array.array("h", wav.readframes(frames))
    if sys.byteorder == "big":
        samples.byteswap()
    peak = max((abs(s) for s in samples), default=0)
    return frames / 8000, peak


def _tools() -> tuple[str, str]:
    sox, soxi = shutil.which("sox"), shutil.which("soxi")
    if sox is None or soxi is None:
        raise RecordingToolMissing(
            N_("sox is not installed on the server, so recordings cannot be converted."),
        )
    return sox, soxi


async def _run(*argv: str) -> tuple[int, str]:
    """Run a tool; its exit code and output (stdout, then stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TOOL_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{Path(argv[0]).name} took longer than {TOOL_TIMEOUT_S:g}s"
    return proc.returncode or 0, (out + err).decode("utf-8", errors="replace").strip()[:500]
