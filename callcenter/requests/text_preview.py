"""An admin's edit of a citizen text, checked and shown as a citizen would get it (pure).

``check`` gives the problems of an edit as message ids with the language they belong to, for
the page to say in the reader's language: a text missing in a language, longer than
``TEXT_LIMIT``, or whose placeholders are broken (a ``{`` that opens nothing, ``{}``, ``{due!r}``)
or not the ones its default uses. ``preview`` puts sample values in (``citizen_text_samples.yaml``;
a status's words are shown inside the ``update`` text) and ``analyse`` of ``sms.encoding`` counts
the segments the preview costs: Arabic is sent in UCS-2, 70 characters for one SMS and 67 for each
part of a longer one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from callcenter.messages import N_
from callcenter.requests.citizen_texts import LANGUAGES, CitizenTexts, allowed_placeholders, template_fault
from callcenter.requests.service import DESCRIPTION_LIMIT
from callcenter.requests.text_overrides import default_of
from callcenter.sms.encoding import SmsEncoding, analyse

SAMPLES: Final = Path(__file__).with_name("citizen_text_samples.yaml")
TEXT_LIMIT: Final = 1000
#: kept as a request's description for officers, never texted: no segments to count
NOT_SMS: Final = frozenset({"no_recording_note"})
#: the status whose words the samples' {status} takes
SAMPLE_STATUS: Final = "in_progress"

#: The texts in the order a request meets them: (group, title, names).
GROUPS: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    ("intake", N_("Making a request"), (
        "created", "created_no_recording", "no_recording_note", "ask_category", "ask_municipality",
        "unknown_category", "unknown_municipality", "intake_dropped", "describe_first", "too_long",
        "no_catalogue",
    )),
    ("lookups", N_("Asking for the status"), (
        "status", "status_finished", "status_sent_to_reporter", "bad_check_digit", "unknown_reference",
    )),
    ("updates", N_("Updates on a request"), (
        "update", "update_finished", "resolved", "fixed_thanks", "reopened", "reopen_too_late",
    )),
)  # fmt: skip
PURPOSES: Final[dict[str, str]] = {
    "created": N_("The confirmation of a new request, with its reference and expected date."),
    "created_no_recording": N_("The confirmation when the spoken description could not be kept."),
    "no_recording_note": N_("The request's description for officers when the recording failed (not sent)."),
    "ask_category": N_("By SMS: which category the request is about."),
    "ask_municipality": N_("By SMS: which municipality."),
    "unknown_category": N_("By SMS: the answer names no category."),
    "unknown_municipality": N_("By SMS: the answer names no municipality."),
    "intake_dropped": N_("By SMS: the request was not recorded (no answer in time)."),
    "describe_first": N_("By SMS: the keyword came without a description."),
    "too_long": N_("By SMS: the description is too long."),
    "no_catalogue": N_("By SMS: requests cannot be made now."),
    "status": N_("The status of an open request, to its reporter."),
    "status_finished": N_("The status of a finished request, to its reporter."),
    "status_sent_to_reporter": N_("To someone else asking: the status went to the reporter's number."),
    "bad_check_digit": N_("A reference with a wrong digit."),
    "unknown_reference": N_("A reference no request has."),
    "update": N_("A change of an open request."),
    "update_finished": N_("A change that finishes a request."),
    "resolved": N_("The request is resolved: was it fixed?"),
    "fixed_thanks": N_("The reporter says it was fixed."),
    "reopened": N_("The reporter says it was not fixed: the request is reopened."),
    "reopen_too_late": N_("Too late to reopen: make a new request."),
}
STATUS_PURPOSE: Final = N_("The words for this status in the status and update texts.")
PLACEHOLDERS: Final[dict[str, str]] = {
    "reference": N_("the request's reference, such as 1415-4217-0393"),
    "category": N_("the category's name"),
    "due": N_("the expected date, as 2026-03-17"),
    "body": N_("the responsible body's name"),
    "status": N_("the status in words (the status texts)"),
    "note": N_("the officer's public note with a space before it, or nothing"),
    "choices": N_("the numbered list of the categories"),
    "limit": N_("the most characters a description may have"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    language: str  # ar | en
    message: str  # a message id, with %(name)s values
    values: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Preview:
    """A text with the sample values in, and what it costs to send (None: not an SMS)."""

    text: str
    cost: SmsEncoding | None


def section_and_name(text_id: str) -> tuple[str, str]:
    """``texts.created`` -> (``texts``, ``created``); ('', '') for anything else."""
    section, _, name = text_id.partition(".")
    return (section, name) if section in ("texts", "statuses") and name else ("", "")


def check(section: str, name: str, pair: dict[str, str]) -> list[Problem]:
    """The problems of an edit (none: it may be saved)."""
    default = default_of(section, name)
    problems: list[Problem] = []
    for lang in LANGUAGES:
        text = pair.get(lang, "")
        allowed = allowed_placeholders(default[lang])
        if not text.strip():
            problems.append(Problem(lang, N_("Write the text in this language.")))
            continue
        if len(text) > TEXT_LIMIT:
            problems.append(
                Problem(
                    lang, N_("A text has at most %(limit)s characters; this one has %(count)s."),
                    {"limit": f"{TEXT_LIMIT:,}", "count": f"{len(text):,}"},
                )
            )  # fmt: skip
            continue
        fault = template_fault(text, allowed)
        if fault is None:
            continue
        if fault.kind == "braces":
            problems.append(
                Problem(
                    lang, N_("A brace opens or closes no placeholder. Write a placeholder as its name in "
                             "braces, such as %(example)s; for a brace itself, write it twice."),
                    {"example": _example(allowed)},
                )
            )  # fmt: skip
        elif fault.kind == "unnamed":
            problems.append(
                Problem(
                    lang,
                    N_("A placeholder needs its name, such as %(example)s."),
                    {"example": _example(allowed)},
                )
            )
        elif fault.kind == "styled":
            plain = "{" + fault.names[0].partition("!")[0] + "}"
            problems.append(
                Problem(lang, N_("Write the placeholder plainly, as %(example)s."), {"example": plain})
            )
        elif allowed:
            problems.append(
                Problem(
                    lang, N_("Unknown placeholder %(names)s. This text may use: %(allowed)s."),
                    {"names": _braced(fault.names), "allowed": _braced(sorted(allowed))},
                )
            )  # fmt: skip
        else:
            problems.append(
                Problem(
                    lang, N_("Unknown placeholder %(names)s. This text takes no placeholders."),
                    {"names": _braced(fault.names)},
                )
            )  # fmt: skip
    return problems


def _example(allowed: frozenset[str]) -> str:
    return "{" + (sorted(allowed)[0] if allowed else "reference") + "}"


def _braced(names: Any) -> str:
    return ", ".join("{" + name + "}" for name in names)


@cache
def _samples() -> dict[str, dict[str, str]]:
    data = yaml.safe_load(SAMPLES.read_text(encoding="utf-8"))
    return {lang: {str(k): str(v) for k, v in data[lang].items()} for lang in LANGUAGES}


def samples(language: str, texts: CitizenTexts) -> dict[str, str]:
    """The values a preview puts in, in ``language``."""
    values = dict(_samples()["en" if language == "en" else "ar"])
    values["status"] = texts.status_word(SAMPLE_STATUS, language)
    values["limit"] = str(DESCRIPTION_LIMIT)
    return values


def preview(section: str, name: str, template: str, language: str, texts: CitizenTexts) -> Preview | None:
    """The text as a citizen would get it (a status's words inside the ``update`` text), and its
    cost; None when the template is broken (``check`` says why)."""
    values = samples(language, texts)
    try:
        if section == "statuses":
            text = texts.texts["update"]["en" if language == "en" else "ar"].format(
                **{**values, "status": template}
            )
        else:
            text = template.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError):
        return None
    return Preview(text, None if name in NOT_SMS else analyse(text))


def every_text(texts: CitizenTexts) -> list[tuple[str, str, list[str]]]:
    """(group, title, text ids) for the list page: the groups, then the status words."""
    out = [
        (group, title, [f"texts.{name}" for name in names if name in texts.texts])
        for group, title, names in GROUPS
    ]
    listed = {name for _, _, names in GROUPS for name in names}
    others = [f"texts.{name}" for name in texts.texts if name not in listed]
    if others:
        out.append(("other", N_("Other texts"), others))
    out.append(("statuses", N_("Statuses in words"), [f"statuses.{name}" for name in texts.statuses]))
    return out


def purpose(section: str, name: str) -> str:
    """A message id saying what the text is for."""
    return STATUS_PURPOSE if section == "statuses" else PURPOSES.get(name, "")
