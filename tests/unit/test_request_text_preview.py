"""The pure parts of the requests' admin texts and of Open311 updates: what is wrong with a
text's placeholders, a preview of every text in both languages with its SMS cost, and the
status an Open311 client's update moves a request to."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.open311.updates import target_of
from callcenter.requests.citizen_texts import TextsFileError, defaults, parse, template_fault
from callcenter.requests.lifecycle import Status
from callcenter.requests.text_preview import GROUPS, PURPOSES, check, every_text, preview, section_and_name


@pytest.mark.parametrize(
    ("template", "kind", "names"),
    [
        ("Ref {reference", "braces", ()),
        ("Ref reference}", "braces", ()),
        ("Ref {}", "unnamed", ()),
        ("Ref {0}", "unnamed", ()),
        ("Ref {reference!r}", "styled", ("reference",)),
        ("Ref {due:>12}", "styled", ("due",)),
        ("Ref {refrence}", "unknown", ("refrence",)),
        ("Ref {reference.real}", "unknown", ("reference.real",)),
        ("Ref {reference[0]}", "unknown", ("reference[0]",)),
    ],
)
def test_a_broken_or_unknown_placeholder_is_named_by_its_fault(
    template: str, kind: str, names: tuple[str, ...]
) -> None:
    fault = template_fault(template, {"reference", "due"})
    assert fault is not None and fault.kind == kind and fault.names == names


def test_good_placeholders_and_doubled_braces_pass() -> None:
    assert template_fault("Ref {reference} by {due} {{not a placeholder}}", {"reference", "due"}) is None


def test_the_override_file_refuses_a_nameless_placeholder_that_would_fail_when_sent() -> None:
    with pytest.raises(TextsFileError, match="needs its name"):
        parse('texts:\n  fixed_thanks: {ar: "شكراً {}", en: "Thanks {}"}\n', defaults=defaults())


def test_every_text_is_listed_once_with_what_it_is_for() -> None:
    texts = defaults()
    listed = [text_id for _, _, ids in every_text(texts) for text_id in ids]
    assert len(listed) == len(set(listed)) == len(texts.texts) + len(texts.statuses)
    grouped = {name for _, _, names in GROUPS for name in names}
    assert grouped == set(texts.texts) == set(PURPOSES)


@pytest.mark.parametrize("language", ["ar", "en"])
def test_every_default_text_previews_with_the_samples_and_counts_its_sms(language: str) -> None:
    texts = defaults()
    for _, _, ids in every_text(texts):
        for text_id in ids:
            section, name = section_and_name(text_id)
            template = (texts.texts if section == "texts" else texts.statuses)[name][language]
            shown = preview(section, name, template, language, texts)
            assert shown is not None, text_id
            assert "{" not in shown.text, text_id
            if name == "no_recording_note":
                assert shown.cost is None  # never texted
            else:
                assert shown.cost is not None and shown.cost.segments >= 1
                assert shown.cost.encoding == ("ucs2" if language == "ar" else "gsm7"), text_id


def test_an_arabic_text_costs_ucs2_segments_of_70_then_67_characters() -> None:
    texts = defaults()
    short = preview("texts", "fixed_thanks", "1415: شكراً {reference}", "ar", texts)
    assert short is not None and short.cost is not None and (short.cost.segments, short.cost.units) == (1, 26)
    for letters, segments in ((55, 1), (56, 2), (119, 2), (120, 3)):  # + " 1415-4217-0393": 15 more
        shown = preview("texts", "fixed_thanks", "ا" * letters + " {reference}", "ar", texts)
        assert shown is not None and shown.cost is not None
        assert (shown.cost.units, shown.cost.segments) == (letters + 15, segments)


def test_a_check_names_each_language_s_problem() -> None:
    problems = check("texts", "update", {"ar": "", "en": "Request {refrence}"})
    assert [(p.language, p.message) for p in problems] == [
        ("ar", "Write the text in this language."),
        ("en", "Unknown placeholder %(names)s. This text may use: %(allowed)s."),
    ]
    assert problems[1].values == {"names": "{refrence}", "allowed": "{due}, {note}, {reference}, {status}"}
    assert check("statuses", "closed", {"ar": "أُغلق", "en": "closed"}) == []


def test_section_and_name_take_only_the_two_sections() -> None:
    assert section_and_name("texts.created") == ("texts", "created")
    assert section_and_name("statuses.closed") == ("statuses", "closed")
    for bad in ("created", "other.created", "texts.", ""):
        assert section_and_name(bad) == ("", "")


@pytest.mark.parametrize(
    ("current", "posted", "target"),
    [
        (Status.SENT, "OPEN", None),  # a note
        (Status.ACKNOWLEDGED, "IN_PROGRESS", None),  # the client's view lags: a note
        (Status.SENT, "REOPEN", Status.REOPENED),  # the life cycle refuses it
        (Status.REOPENED, "REOPEN", None),
        (Status.RESOLVED, "OPEN", Status.REOPENED),
        (Status.CLOSED, "INVESTIGATING", Status.REOPENED),
        (Status.RESOLVED, "CLOSED", None),
        (Status.DUPLICATE, "FIXED", None),
        (Status.SENT, "FIXED", Status.RESOLVED),  # the life cycle refuses it to a citizen
        (Status.IN_PROGRESS, "CLOSED", Status.CLOSED),
        (Status.NOT_RESPONSIBLE, "DUPLICATE", Status.DUPLICATE),
    ],
)
def test_an_update_s_status_says_what_it_asks_of_the_request(
    current: Status, posted: str, target: Status | None
) -> None:
    assert target_of(current, posted) == target


def test_the_samples_file_is_beside_the_module() -> None:
    from callcenter.requests import text_preview

    assert Path(text_preview.SAMPLES).is_file()
