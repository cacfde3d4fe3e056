"""The SMS texts citizens get about their requests, in Arabic and English, that admins edit.

The defaults live in ``citizen_texts.yaml`` beside this module; a ``request_texts.yaml`` in
the data directory overrides them text by text (a file, like the prompt catalogue, so that
the wording is changed without a release and kept with the deployment). The override is
checked whole before it is used: each text in both languages, only known texts, only the
placeholders the default uses, each by its plain name (a typo such as ``{refrence}``, or a
stray ``{``, would otherwise fail at the moment a citizen is to be told). A bad file is
logged and the defaults stay. It is read again when its modification time changes.

Admins also edit the texts in the app (``/admin/requests/texts``): those are kept in the
database and win over the file (``text_overrides``, which the senders ask for the texts).

Usage::

    texts = citizen_texts(settings)
    texts.say("created", "ar", reference="1415-4217-0393", category="...", due="2026-03-17")
    texts.status_word("resolved", "en")      # "resolved"
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from callcenter.errors import CallCenterError
from callcenter.settings import Settings

log = logging.getLogger(__name__)

DEFAULTS: Final = Path(__file__).with_name("citizen_texts.yaml")
OVERRIDE_NAME: Final = "request_texts.yaml"
LANGUAGES: Final = ("ar", "en")


class TextsFileError(CallCenterError):
    error_id = "request_texts_file"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@dataclass(frozen=True, slots=True)
class TemplateFault:
    """What is wrong with a text's placeholders: ``braces`` (a ``{`` or ``}`` that opens or
    closes nothing; ``detail`` says which), ``unnamed`` (``{}`` or ``{0}``), ``styled`` (a
    conversion or format such as ``{due!r}`` or ``{due:>10}``), ``unknown`` (``names`` the text
    may not use)."""

    kind: Literal["braces", "unnamed", "styled", "unknown"]
    names: tuple[str, ...] = ()
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == "braces":
            return f"a brace opens or closes no placeholder ({self.detail}); write {{{{ or }}}} for one"
        if self.kind == "unnamed":
            return "a placeholder needs its name, e.g. {reference}"
        if self.kind == "styled":
            return f"write the placeholder plainly: {{{self.names[0]}}}"
        return f"unknown placeholder {', '.join(self.names)}"


def template_fault(template: str, allowed: Iterable[str]) -> TemplateFault | None:
    """None when ``template`` uses only ``allowed`` placeholders, each by its plain name."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        return TemplateFault("braces", detail=str(exc))
    used: list[str] = []
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not name or name.isdigit():
            return TemplateFault("unnamed")
        if spec or conversion:
            return TemplateFault("styled", (name,))
        used.append(name)
    unknown = sorted(set(used) - set(allowed))
    return TemplateFault("unknown", tuple(unknown)) if unknown else None


def allowed_placeholders(default: str) -> frozenset[str]:
    """The placeholders a text may use: those its default uses."""
    return frozenset(_placeholders(default))


@dataclass(frozen=True, slots=True)
class CitizenTexts:
    texts: dict[str, dict[str, str]]  # kind -> language -> template
    statuses: dict[str, dict[str, str]]  # status -> language -> words

    def say(self, kind: str, language: str, **values: str) -> str:
        """The text ``kind`` in ``language`` (Arabic unless ``en``) with ``values`` put in."""
        lang = "en" if language == "en" else "ar"
        return self.texts[kind][lang].format(**values)

    def status_word(self, status: str, language: str) -> str:
        lang = "en" if language == "en" else "ar"
        return self.statuses.get(status, {}).get(lang, status)


def parse(text: str, *, defaults: CitizenTexts | None = None) -> CitizenTexts:
    """The texts of a file; with ``defaults``, an override checked against them and merged."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TextsFileError(f"not YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"texts", "statuses"}:
        raise TextsFileError("the file has two mappings: texts and statuses")
    texts = _section(data, "texts", defaults.texts if defaults else None)
    statuses = _section(data, "statuses", defaults.statuses if defaults else None)
    if defaults is None:
        return CitizenTexts(texts, statuses)
    return CitizenTexts({**defaults.texts, **texts}, {**defaults.statuses, **statuses})


def _section(
    data: dict[str, Any], name: str, known: dict[str, dict[str, str]] | None
) -> dict[str, dict[str, str]]:
    items = data.get(name) or {}
    if not isinstance(items, dict):
        raise TextsFileError(f"{name} maps a name to {{ar: ..., en: ...}}")
    out: dict[str, dict[str, str]] = {}
    for kind, value in items.items():
        kind = str(kind)
        if known is not None and kind not in known:
            raise TextsFileError(f"{name}.{kind}: no such text")
        if not isinstance(value, dict) or any(not str(value.get(lang) or "").strip() for lang in LANGUAGES):
            raise TextsFileError(f"{name}.{kind}: the text in Arabic and English is needed")
        pair = {lang: str(value[lang]).strip() for lang in LANGUAGES}
        for lang, template in pair.items():
            try:
                used = _placeholders(template)
            except ValueError as exc:
                raise TextsFileError(f"{name}.{kind}.{lang}: {exc}") from exc
            allowed = _placeholders(known[kind][lang]) if known is not None else used
            fault = template_fault(template, allowed)
            if fault is not None:
                raise TextsFileError(f"{name}.{kind}.{lang}: {fault}")
        out[kind] = pair
    return out


_DEFAULT: CitizenTexts | None = None
_OVERRIDES: dict[Path, tuple[float, CitizenTexts]] = {}


def defaults() -> CitizenTexts:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = parse(DEFAULTS.read_text(encoding="utf-8"))
    return _DEFAULT


def citizen_texts(settings: Settings) -> CitizenTexts:
    """The defaults, overridden by the data directory's ``request_texts.yaml`` when it is good."""
    path = settings.data_dir / OVERRIDE_NAME
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return defaults()
    cached = _OVERRIDES.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        merged = parse(path.read_text(encoding="utf-8"), defaults=defaults())
    except (OSError, UnicodeDecodeError, TextsFileError) as exc:
        log.error("%s not used (the default texts stay): %s", path, exc)
        merged = defaults()
    _OVERRIDES[path] = (stamp, merged)
    return merged
