"""The voice line's prompts: texts in Arabic and English, and their audio for Asterisk.

Usage::

    catalogue = load_catalogue()                            # prompts/catalogue.yaml
    await call.stream_file(str(prompt_path(settings.prompts_dir, "ar", "greeting")))
    ids = compose_number(345, "ar")                         # num-300, num-and-5, num-and-40
    report = await render_all(settings, inquiries)          # espeak-ng + sox, only what changed

A catalogue entry with a ``sox:`` line is not spoken but made by sox's ``synth`` (the hold
music: the same tones in both languages, its texts only name it); an uploaded recording
replaces it like any other prompt.

Audio is 8 kHz mono 16-bit WAV, what Asterisk's ``format_wav`` plays without transcoding,
under ``<prompts_dir>/audio/<language>/<id>.wav``. Asterisk opens the files itself: on a
separate Asterisk server the same absolute path must exist there. A studio recording under
``<prompts_dir>/recordings/<language>/<id>.wav`` (uploaded on the /prompts page) is played
instead while it exists: the IVR resolves each id through
:func:`callcenter.voice.recordings.playable_path`, never through :func:`prompt_path` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from callcenter.errors import CallCenterError
from callcenter.inquiry.definition import LANGUAGES, Inquiry, Language, QuestionKind
from callcenter.settings import Settings

#: The catalogue in the source tree (``prompts/catalogue.yaml`` next to the package).
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[1] / "prompts" / "catalogue.yaml"
#: espeak-ng voice per language; a text without Arabic letters always gets the "en" voice.
VOICES: Mapping[Language, str] = {"ar": "ar", "en": "en"}
#: Words per minute: a little slower than espeak's 175, for the telephone.
SPEED_WPM = 150
#: Bump to re-render everything when the pipeline below changes.
_PIPELINE = "espeak-ng|sox 8000/1/16 gain -n -3|v1"
_MANIFEST = "manifest.json"

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB50-\uFDFF\uFE70-\uFEFF]")
_KEYS = {**{str(d): f"num-{d}" for d in range(10)}, "*": "key-star", "#": "key-hash"}
_MAX_NUMBER = 999_999


class PromptError(CallCenterError):
    """A catalogue that cannot be used (missing text, bad id), or a prompt that is unknown."""

    error_id = "prompt_error"


class PromptToolMissing(PromptError):
    """espeak-ng or sox is not installed: nothing can be rendered."""

    error_id = "prompt_tool_missing"


@dataclass(frozen=True, slots=True)
class Prompt:
    """One thing the IVR says, in both languages; ``sox``: effects that make the audio instead
    of speech (``synth 0.5 pluck C4 : synth 0.5 pluck E4``), the texts then only name it."""

    id: str
    ar: str
    en: str
    sox: str = ""

    def text(self, language: Language) -> str:
        return self.ar if language == "ar" else self.en


@dataclass(slots=True)
class RenderReport:
    """What :func:`render` did, per ``<language>/<id>``."""

    rendered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        line = (
            f"{len(self.rendered)} rendered, {len(self.skipped)} unchanged, "
            f"{len(self.failed)} failed in {self.seconds:.1f}s"
        )
        return "\n".join([line, *(f"  {key}: {error}" for key, error in self.failed.items())])


# -- the catalogue ------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated key (YAML would silently keep the last one)."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise PromptError(
                f"prompt catalogue: {key!r} appears twice (line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_catalogue(path: Path | None = None) -> dict[str, Prompt]:
    """Every prompt of ``path`` (default: :data:`DEFAULT_CATALOGUE`) by id, both texts present."""
    path = path or DEFAULT_CATALOGUE
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        raise PromptError(f"cannot read the prompt catalogue {path}: {exc}", path=str(path)) from exc
    entries = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise PromptError(f"{path}: expected a 'prompts:' mapping of id -> {{ar, en}}")
    catalogue: dict[str, Prompt] = {}
    for prompt_id, texts in entries.items():
        prompt_id = str(prompt_id)
        _check_id(prompt_id)
        if not isinstance(texts, dict):
            raise PromptError(f"{path}: prompt {prompt_id!r} must have ar and en texts")
        ar, en = (str(texts.get(lang) or "").strip() for lang in LANGUAGES)
        if not ar or not en:
            missing = " and ".join(lang for lang, t in zip(LANGUAGES, (ar, en), strict=True) if not t)
            raise PromptError(f"{path}: prompt {prompt_id!r} has no {missing} text", id=prompt_id)
        catalogue[prompt_id] = Prompt(prompt_id, ar, en, str(texts.get("sox") or "").strip())
    return catalogue


def _check_id(prompt_id: str) -> None:
    if not _ID.match(prompt_id):
        raise PromptError(
            f"prompt id {prompt_id!r}: use lowercase letters, digits, '-' and '_'", id=prompt_id
        )


def prompt_path(prompts_dir: Path, language: Language, prompt_id: str) -> Path:
    """The absolute path STREAM FILE / GET DATA take: no extension (Asterisk picks ``.wav``)."""
    if language not in LANGUAGES:
        raise PromptError(f"no prompts in language {language!r}")
    _check_id(prompt_id)
    return (prompts_dir / "audio" / language / prompt_id).resolve()


# -- composing numbers and digits ---------------------------------------------------------------


def compose_number(n: int, language: Language) -> list[str]:
    """Prompt ids that speak ``n`` (0..999,999) as a number, in ``language``'s word order.

    Arabic puts units before tens and joins with و (45: خمسة وأربعون → num-5, num-and-40);
    English says 345 as "three hundred and forty five" (num-300, num-and-40, num-5).
    Counting forms (masculine) are used, as when a number is read out alone.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_NUMBER:
        raise ValueError(f"compose_number takes an int in 0..{_MAX_NUMBER}, not {n!r}")
    if n == 0:
        return ["num-0"]
    thousands, rest = divmod(n, 1000)
    ids: list[str] = []
    if language == "ar":
        if thousands:
            ids += _ar_thousands(thousands)
        if rest:
            ids += _ar_below_1000(rest, joined=bool(thousands))
    elif language == "en":
        if thousands:
            ids += ["num-1000"] if thousands == 1 else [*_en_below_1000(thousands), "word-thousand"]
        if rest:
            ids += _en_below_1000(rest, joined=bool(thousands) and rest < 100)
    else:
        raise PromptError(f"no prompts in language {language!r}")
    return ids


def _num(n: int, joined: bool) -> str:
    return f"num-and-{n}" if joined else f"num-{n}"


def _ar_below_100(n: int, joined: bool) -> list[str]:
    if n < 20 or n % 10 == 0:
        return [_num(n, joined)]
    return [_num(n % 10, joined), _num(n - n % 10, True)]  # خمسة وأربعون


def _ar_below_1000(n: int, joined: bool) -> list[str]:
    hundreds, rest = divmod(n, 100)
    ids = [_num(hundreds * 100, joined)] if hundreds else []
    if rest:
        ids += _ar_below_100(rest, joined or bool(hundreds))
    return ids


def _ar_thousands(t: int) -> list[str]:
    if t <= 2:
        return [f"num-{t * 1000}"]  # ألف، ألفان
    last = t % 100
    noun = (
        "word-thousands" if 3 <= last <= 10  # ثلاثة آلاف
        else "word-thousand-acc" if last >= 11  # أحد عشر ألفاً
        else "word-thousand"  # مئة ألف
    )  # fmt: skip
    return [*_ar_below_1000(t, joined=False), noun]


def _en_below_100(n: int, joined: bool) -> list[str]:
    if n <= 20 or n % 10 == 0:
        return [_num(n, joined)]
    return [_num(n - n % 10, joined), f"num-{n % 10}"]  # forty five


def _en_below_1000(n: int, joined: bool = False) -> list[str]:
    hundreds, rest = divmod(n, 100)
    ids = [f"num-{hundreds * 100}"] if hundreds else []
    if rest:
        ids += _en_below_100(rest, joined or bool(hundreds))
    return ids


def compose_digits(digits: str) -> list[str]:
    """Prompt ids that read ``digits`` key by key (a reference or phone number).

    Spaces, ``-`` and a leading ``+`` are skipped; anything else but 0-9 * # is refused.
    """
    ids: list[str] = []
    for i, char in enumerate(digits):
        if char in " -" or (char == "+" and i == 0):
            continue
        if char not in _KEYS:
            raise ValueError(f"cannot read {char!r} in {digits!r} as a key")
        ids.append(_KEYS[char])
    return ids


# -- inquiry prompts ----------------------------------------------------------------------------


def question_prompt_id(slug: str, key: str) -> str:
    """``q-<inquiry slug>-<question key>``: the question as the IVR asks it."""
    return f"q-{slug}-{key}"


def option_prompt_id(slug: str, key: str, number: int) -> str:
    """``q-<slug>-<key>-opt<N>``: the label of option N (1-based: the key the citizen presses)."""
    return f"{question_prompt_id(slug, key)}-opt{number}"


def inquiry_text_prompt_id(slug: str, which: str) -> str:
    """``q-<slug>-_intro`` / ``q-<slug>-_thanks``: question keys never start with ``_``."""
    return f"q-{slug}-_{which}"


def inquiry_prompts(inquiry: Inquiry) -> dict[str, Prompt]:
    """The prompts an inquiry needs on the voice line: its intro and thanks, each question,
    each option of a choice question. English falls back to Arabic when the inquiry has no
    English text (and is then spoken with the Arabic voice)."""
    prompts: dict[str, Prompt] = {}

    def add(prompt_id: str, ar: str, en: str) -> None:
        _check_id(prompt_id)
        prompts[prompt_id] = Prompt(prompt_id, ar, en or ar)

    for which, text in (("intro", inquiry.intro), ("thanks", inquiry.thanks)):
        if text.ar:
            add(inquiry_text_prompt_id(inquiry.slug, which), text.get("ar"), text.get("en"))
    for question in inquiry.questions:
        qid = question_prompt_id(inquiry.slug, question.key)
        add(qid, question.text.get("ar"), question.text.get("en"))
        if question.kind is QuestionKind.CHOICE:
            for number, option in enumerate(question.options, 1):
                add(option_prompt_id(inquiry.slug, question.key, number),
                    option.label.get("ar"), option.label.get("en"))  # fmt: skip
    return prompts


# -- rendering ----------------------------------------------------------------------------------


def voice_for(text: str, language: Language, voices: Mapping[Language, str] = VOICES) -> str:
    """The espeak-ng voice for ``text``: by its script, so that an English sentence in the
    Arabic flow (``for-english``) or an Arabic fallback in the English flow sounds right."""
    del language  # the script decides; kept so that callers say which flow the text is for
    return voices["ar"] if _ARABIC.search(text) else voices["en"]


def _tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    missing = [name for name, found in (("espeak-ng", espeak), ("sox", sox)) if not found]
    if missing or espeak is None or sox is None:
        raise PromptToolMissing(
            f"cannot render prompts: {' and '.join(missing)} not found on PATH "
            "(Debian: apt-get install espeak-ng sox)",
            missing=missing,
        )
    return espeak, sox


def _digest(text: str, voice: str, speed: int) -> str:
    return hashlib.sha256(json.dumps([_PIPELINE, voice, speed, text]).encode()).hexdigest()


async def render(
    prompts_dir: Path,
    catalogue: Mapping[str, Prompt],
    *,
    extra: Mapping[str, Prompt] | None = None,
    force: bool = False,
    languages: Iterable[Language] = LANGUAGES,
    voices: Mapping[Language, str] = VOICES,
    speed: int = SPEED_WPM,
    jobs: int | None = None,
) -> RenderReport:
    """Render every prompt (catalogue + ``extra``) to ``<prompts_dir>/audio/<lang>/<id>.wav``.

    A prompt whose text, voice and pipeline are unchanged since the last run (the hash in
    ``audio/manifest.json``) and whose file exists is skipped, unless ``force``. Failures are
    collected in the report, not raised; :class:`PromptToolMissing` if a tool is missing.
    """
    started = time.monotonic()
    espeak, sox = _tools()
    prompts = dict(catalogue)
    for prompt_id, prompt in (extra or {}).items():
        if prompt_id in prompts and prompts[prompt_id] != prompt:
            raise PromptError(f"extra prompt {prompt_id!r} clashes with the catalogue", id=prompt_id)
        prompts[prompt_id] = prompt
    audio = prompts_dir / "audio"
    manifest_path = audio / _MANIFEST
    manifest = _read_manifest(manifest_path)
    report = RenderReport()
    limit = asyncio.Semaphore(jobs or os.cpu_count() or 2)

    async def one(language: Language, prompt: Prompt) -> None:
        key = f"{language}/{prompt.id}"
        text = prompt.text(language)
        voice = voice_for(text, language, voices)
        digest = _digest(f"sox {prompt.sox}", "sox", 0) if prompt.sox else _digest(text, voice, speed)
        target = prompt_path(prompts_dir, language, prompt.id).with_suffix(".wav")
        if not force and manifest.get(key) == digest and target.is_file():
            report.skipped.append(key)
            return
        async with limit:
            if prompt.sox:
                error = await _synth_one(sox, prompt.sox, target)
            else:
                error = await _render_one(espeak, sox, text, voice, speed, target)
        if error:
            report.failed[key] = error
            manifest.pop(key, None)
        else:
            report.rendered.append(key)
            manifest[key] = digest

    for language in languages:
        (audio / language).mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.TaskGroup() as group:
            for language in languages:
                for prompt in prompts.values():
                    group.create_task(one(language, prompt))
    finally:
        _write_manifest(manifest_path, manifest)  # keep what was done, even if interrupted
        report.seconds = time.monotonic() - started
    return report


async def _render_one(espeak: str, sox: str, text: str, voice: str, speed: int, target: Path) -> str | None:
    """espeak-ng → WAV (22 kHz) → sox → 8 kHz mono 16-bit, normalised; the error or None."""
    with tempfile.TemporaryDirectory(prefix="prompt-", dir=target.parent) as tmp:
        spoken, final = Path(tmp) / "espeak.wav", Path(tmp) / "final.wav"
        steps = (
            ([espeak, "-v", voice, "-s", str(speed), "-w", str(spoken), "--stdin"], text.encode()),
            ([sox, str(spoken), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
              str(final), "gain", "-n", "-3"], None),
        )  # fmt: skip
        for argv, stdin in steps:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, stderr = await proc.communicate(stdin)
            if proc.returncode != 0:
                name = Path(argv[0]).name
                return f"{name} exited {proc.returncode}: {stderr.decode(errors='replace').strip()}"
        os.replace(final, target)
    return None


async def _synth_one(sox: str, effects: str, target: Path) -> str | None:
    """sox ``-n`` (no input) through ``effects`` → 8 kHz mono 16-bit; the error or None."""
    with tempfile.TemporaryDirectory(prefix="prompt-", dir=target.parent) as tmp:
        final = Path(tmp) / "final.wav"
        argv = [sox, "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(final),
                *shlex.split(effects)]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await proc.communicate()
        if proc.returncode != 0:
            return f"sox exited {proc.returncode}: {stderr.decode(errors='replace').strip()}"
        os.replace(final, target)
    return None


def _read_manifest(path: Path) -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
    return {}


def _write_manifest(path: Path, manifest: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n", "utf-8")
    os.replace(scratch, path)


async def render_all(
    settings: Settings, inquiries: Iterable[Inquiry], *, more: Mapping[str, Prompt] | None = None
) -> RenderReport:
    """Render the catalogue, the prompts of ``inquiries`` and ``more`` (the service
    catalogue's category and body names) under ``settings.prompts_dir`` (for the CLI:
    ``run(lambda s: render_all(s, inquiries))``). A ``catalogue.yaml`` in ``prompts_dir`` wins
    over the one in the source tree."""
    local = settings.prompts_dir / "catalogue.yaml"
    catalogue = load_catalogue(local if local.is_file() else None)
    extra: dict[str, Prompt] = dict(more or {})
    for inquiry in inquiries:
        extra.update(inquiry_prompts(inquiry))
    return await render(settings.prompts_dir, catalogue, extra=extra)
