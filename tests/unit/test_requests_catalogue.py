"""The service catalogue from YAML: the sample parses and routes, and a bad file is refused
with the item named."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.requests.catalogue import CatalogueFileError, parse

SAMPLE = Path(__file__).parents[2] / "callcenter" / "samples" / "requests.yaml"

BODIES = """bodies:
  - {key: services, kind: municipal, name: {ar: الخدمات, en: Services}}
  - {key: gecol, kind: national, name: {ar: الكهرباء, en: GECOL}}
"""


def category(**fields: str) -> str:
    item = {
        "key": "lighting", "keypad": "1", "name": "{ar: إنارة, en: Lighting}",
        "sla": "{first_response_hours: 7, resolution_hours: 35}", "body": "services",
    }  # fmt: skip
    item.update(fields)
    inner = ", ".join(f"{k}: {v}" for k, v in item.items() if v != "-")
    return f"  - {{{inner}}}\n"


def test_the_sample_has_the_six_categories_with_their_keys_and_bodies() -> None:
    catalogue = parse(SAMPLE.read_text(encoding="utf-8"))
    assert [c.key for c in catalogue.categories.values()] == [
        "street_lighting", "waste_collection", "water_leak", "roads_potholes", "sewage", "electricity_outage",
    ]  # fmt: skip
    assert [c.keypad for c in catalogue.categories.values()] == ["1", "2", "3", "4", "5", "6"]
    outage = catalogue.by_keypad("6")
    assert (
        outage is not None and outage.name_ar == "انقطاع الكهرباء" and outage.name_en == "Electricity outage"
    )
    assert [q.key for q in outage.questions] == ["neighbourhood", "meter"]
    assert outage.targets.first_response_h == 2 and outage.targets.resolution_h == 14
    assert catalogue.by_keypad("9") is None


def test_routing_takes_the_override_of_the_municipality_else_the_default() -> None:
    catalogue = parse(SAMPLE.read_text(encoding="utf-8"))
    assert catalogue.route("waste_collection", "benghazi").key == "benghazi_public_services"
    assert catalogue.route("waste_collection", "tripoli-centre").key == "tripoli_public_services"
    assert catalogue.route("waste_collection", "misrata").key == "municipal_services"
    assert catalogue.route("waste_collection", None).key == "municipal_services"
    assert catalogue.route("water_leak", "benghazi").kind == "national"
    assert catalogue.municipalities() == {"benghazi", "tripoli-centre"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bodies: [ {key: a", "not YAML"),
        ("rooms: []", "two lists"),
        ("bodies: {a: 1}", "bodies is a list"),
        ("bodies:\n  - {key: 'Bad Key', kind: national, name: {ar: أ, en: A}}", "a key of lower-case"),
        ("bodies:\n  - {key: a, kind: private, name: {ar: أ, en: A}}", "the kind is municipal or national"),
        ("bodies:\n  - {key: a, kind: national, name: {en: A}}", "body 1 (a): the Arabic name is missing"),
        ("bodies:\n  - {key: a, kind: national, name: {ar: Water, en: A}}", "not in Arabic letters"),
        ("bodies:\n  - {key: a, kind: national, name: {ar: أ}}", "the English name is missing"),
        ("bodies:\n  - {key: a, kind: national, name: water}", "a name in Arabic and English"),
        (
            "bodies:\n  - {key: a, kind: national, municipality: benghazi, name: {ar: أ, en: A}}",
            "only a municipal",
        ),
        (
            "bodies:\n  - {key: a, kind: national, colour: red, name: {ar: أ, en: A}}",
            "unknown fields: colour",
        ),
        (
            "bodies:\n  - {key: a, kind: national, name: {ar: أ, en: A}}\n"
            "  - {key: a, kind: national, name: {ar: ب, en: B}}",
            "body 2: the key a is used twice",
        ),
        (
            BODIES + "categories:\n" + category(name="{en: Lighting}"),
            "category 1 (lighting): the Arabic name",
        ),
        (BODIES + "categories:\n" + category(keypad="0"), "keypad code is a number from 1 to 99"),
        (BODIES + "categories:\n" + category(keypad="100"), "keypad code"),
        (BODIES + "categories:\n" + category(keypad="-"), "keypad code"),
        (
            BODIES + "categories:\n" + category() + category(key="waste", name="{ar: قمامة, en: Waste}"),
            "category 2 (waste): keypad code 1 is already lighting's",
        ),
        (BODIES + "categories:\n" + category() + category(keypad="2"), "the key lighting is used twice"),
        (BODIES + "categories:\n" + category(body="water"), "unknown body 'water'"),
        (BODIES + "categories:\n" + category(body="-"), "a body is needed"),
        (
            BODIES + "categories:\n" + category(sla="{first_response_hours: 7}"),
            "sla has first_response_hours",
        ),
        (
            BODIES + "categories:\n" + category(sla="{first_response_hours: 40, resolution_hours: 7}"),
            "0 < first response <= resolution",
        ),
        (
            BODIES + "categories:\n" + category(sla="{first_response_hours: soon, resolution_hours: 7}"),
            "SLA targets are working hours",
        ),
        (
            BODIES + "categories:\n" + category(overrides="{benghazi: water}"),
            "override for benghazi names an unknown",
        ),
        (BODIES + "categories:\n" + category(overrides="[benghazi]"), "overrides map a municipality"),
        (
            BODIES + "categories:\n" + category(questions="[{key: street, ar: الشارع؟}]"),
            "in Arabic and English",
        ),
        (BODIES + "categories:\n" + category(questions="street"), "questions is a list"),
        (
            BODIES
            + "categories:\n"
            + category(questions="[{key: street, ar: أ, en: A}, {key: street, ar: ب, en: B}]"),
            "question street is asked twice",
        ),
    ],
)
def test_a_bad_file_is_refused_with_the_item_named(text: str, says: str) -> None:
    with pytest.raises(CatalogueFileError) as refused:
        parse(text)
    assert says in str(refused.value)
    assert refused.value.error_id == "catalogue_file"


def test_an_empty_file_is_an_empty_catalogue() -> None:
    catalogue = parse("")
    assert catalogue.bodies == {} and catalogue.categories == {}
