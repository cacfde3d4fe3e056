"""Which prompts the IVR plays, and how it listens to a sequence of them.

Asterisk's AGI ``GET DATA`` and ``STREAM FILE`` take one file (only ``Playback`` and
``Read`` split ``a&b&c``), so a sequence the caller may answer during (the menu, a question
and its hint) is played file by file with ``STREAM FILE`` and every key as an escape, and
the last file with ``GET DATA``: a key pressed early ends the playback and is the answer,
never lost between two commands. Notices the caller need not interrupt ("invalid choice")
go through one ``Playback`` of ``a&b&c``.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

from callcenter.inquiry.definition import LANGUAGES, Inquiry, Language, Question, QuestionKind
from callcenter.prompts import (
    compose_digits,
    compose_number,
    option_prompt_id,
    prompt_path,
    question_prompt_id,
)
from callcenter.settings import Settings
from callcenter.telephony.agi import AgiChannel, AgiCommandFailed
from callcenter.voice.recordings import playable_path

log = logging.getLogger(__name__)
ESCAPE = "0123456789*#"


class Prompts:
    """Prompt ids → the path list Asterisk opens (``asterisk_prompts_dir`` if set). A studio
    recording of a prompt (``recordings/<lang>/<id>.wav``, see voice.recordings) wins over
    the rendered one; the check is made under the local ``prompts_dir`` at every call."""

    def __init__(self, settings: Settings) -> None:
        self.root: Path = settings.asterisk_prompts_dir or settings.prompts_dir
        self.local: Path = settings.prompts_dir

    def __call__(self, language: Language, *ids: str) -> str:
        """``a&b&c`` for ``Playback``."""
        return "&".join(self.paths(language, *ids))

    def paths(self, language: Language, *ids: str) -> list[str]:
        return [str(playable_path(self.local, language, prompt_id, root=self.root)) for prompt_id in ids]


async def listen(call: AgiChannel, paths: Sequence[str], timeout_ms: int, max_digits: int) -> str:
    """Play ``paths`` and collect up to ``max_digits`` keys (``#`` ends them; ``''`` on
    silence). A key during an earlier file stops the playback and counts as the first."""
    for path in paths[:-1]:
        try:
            key = await call.stream_file(path, ESCAPE)
        except AgiCommandFailed:  # a prompt never rendered: skip it, keep the call
            log.warning("prompt missing: %s", path)
            continue
        if key is None:
            continue
        if key == "#":
            return ""
        if key == "*" or max_digits <= 1:
            return key
        return key + await _collect(call, paths[-1], timeout_ms, max_digits - 1)
    return await _collect(call, paths[-1], timeout_ms, max_digits)


async def _collect(call: AgiChannel, path: str, timeout_ms: int, max_digits: int) -> str:
    """GET DATA; when its prompt file is missing (GET DATA fails at once), the keys are
    still collected with WAIT FOR DIGIT, so an unrendered prompt never costs an answer."""
    try:
        return await call.get_data(path, timeout_ms, max_digits)
    except AgiCommandFailed:
        log.warning("prompt missing: %s", path)
    keys = ""
    while len(keys) < max_digits:
        key = await call.wait_for_digit(timeout_ms)
        if key is None or key == "#":
            break
        keys += key
        if key == "*":
            break
    return keys


def question_ids(inquiry: Inquiry, question: Question, language: Language) -> list[str]:
    """The question and how to answer it by keypad."""
    ids = [question_prompt_id(inquiry.slug, question.key)]
    if question.kind is QuestionKind.RATING:
        low, high = question.bounds
        if (low, high) == (1, 5):
            ids.append("rating-hint")
        else:
            ids += ["rating-from", *compose_number(low, language), "word-to", *compose_number(high, language)]
    elif question.kind is QuestionKind.YES_NO:
        ids.append("yes-no-hint")
    elif question.kind is QuestionKind.CHOICE:
        # each option's recording is filed under its place in the definition; the key to press
        # is its place as this caller hears it (``question.order``: randomised options)
        for number, _ in enumerate(question.options, 1):
            recorded = question.order[number - 1] if question.order else number
            ids += [
                option_prompt_id(inquiry.slug, question.key, recorded),
                "press",
                *compose_number(number, language),
            ]
    elif question.kind is QuestionKind.NUMBER:
        ids.append("number-hint")
    return ids


def max_digits(question: Question) -> int:
    """One key when one key is a whole answer (so no ``#`` is needed), else up to 12 ended by ``#``."""
    if question.kind is QuestionKind.YES_NO:
        return 1
    if question.kind is QuestionKind.CHOICE:
        return 1 if len(question.options) <= 9 else 2
    if question.kind is QuestionKind.RATING:
        low, high = question.bounds
        return 1 if low >= 0 and high <= 9 else max(len(str(low)), len(str(high)))
    return 12


def reference_ids(digits: str) -> list[str]:
    return compose_digits(digits)


def write_silent_prompts(prompts_dir: Path, inquiries: Iterable[Inquiry], *, ms: int = 300) -> int:
    """Silent stand-ins for every prompt (catalogue and inquiries, both languages), for a real
    Asterisk where espeak-ng is not installed (tests, benchmarks). Returns the file count."""
    from callcenter.prompts import inquiry_prompts, load_catalogue

    ids = set(load_catalogue())
    for inquiry in inquiries:
        ids |= set(inquiry_prompts(inquiry))
    frames = b"\0\0" * (8 * ms)
    for language in LANGUAGES:
        for prompt_id in ids:
            path = prompt_path(prompts_dir, language, prompt_id).with_suffix(".wav")
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                wav.writeframes(frames)
    return len(ids) * len(LANGUAGES)
