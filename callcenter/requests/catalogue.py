"""The service catalogue: what a citizen can ask for, who is responsible, and how fast.

A **category** has a key, Arabic and English names, a keypad code for the IVR (unique), the
questions to ask (the neighbourhood, a landmark, a meter number ...), SLA targets in working
hours, and a default **responsible body**. A body is a municipality's department (``kind:
municipal``: the request goes to the officers of the request's own municipality, unless the
body names one municipality) or a national body (``kind: national``: the water company,
GECOL). Per (category, municipality) an override names another body.

The file (``callcenter requests load``, sample in callcenter/samples/requests.yaml)::

    bodies:
      - key: gecol
        kind: national
        name: {ar: الشركة العامة للكهرباء, en: General Electricity Company of Libya}
    categories:
      - key: electricity_outage
        keypad: 6
        name: {ar: انقطاع الكهرباء, en: Electricity outage}
        questions:
          - {key: neighbourhood, ar: ما اسم الحي؟, en: Which neighbourhood?}
        sla: {first_response_hours: 4, resolution_hours: 21}
        body: gecol
        overrides: {benghazi: benghazi_services}   # municipality code: body key

``parse`` checks the file whole and names the first bad item (``CatalogueFileError``);
municipality codes are checked against the register when the file is loaded (store.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from callcenter.errors import CallCenterError
from callcenter.requests.sla import Targets

KINDS: Final = ("municipal", "national")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_KEYPAD = re.compile(r"^[1-9][0-9]?$")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
NAME_LIMIT: Final = 200
QUESTION_LIMIT: Final = 300


class CatalogueFileError(CallCenterError):
    error_id = "catalogue_file"


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    ar: str
    en: str


@dataclass(frozen=True, slots=True)
class Body:
    key: str
    kind: str  # municipal | national
    name_ar: str
    name_en: str
    municipality: str | None = None  # a municipality code: a department of that one only


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    keypad: str
    name_ar: str
    name_en: str
    targets: Targets
    body: str  # the default body's key
    questions: tuple[Question, ...] = ()
    overrides: dict[str, str] = field(default_factory=dict)  # municipality code -> body key


@dataclass(frozen=True, slots=True)
class Catalogue:
    bodies: dict[str, Body]
    categories: dict[str, Category]

    def route(self, category: str, municipality: str | None) -> Body:
        """The body responsible for ``category`` in ``municipality`` (its override, else the
        category's default)."""
        cat = self.categories[category]
        key = cat.overrides.get(municipality, cat.body) if municipality else cat.body
        return self.bodies[key]

    def by_keypad(self, keys: str) -> Category | None:
        return next((c for c in self.categories.values() if c.keypad == keys), None)

    def municipalities(self) -> set[str]:
        """Every municipality code the file names (checked against the register on load)."""
        named = {b.municipality for b in self.bodies.values() if b.municipality}
        return named | {code for c in self.categories.values() for code in c.overrides}


def parse(text: str) -> Catalogue:
    """The file's bodies and categories, or ``CatalogueFileError`` naming the first bad item."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CatalogueFileError(f"not YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"bodies", "categories"}:
        raise CatalogueFileError("the file has two lists: bodies and categories")
    bodies: dict[str, Body] = {}
    for n, item in enumerate(_items(data, "bodies"), 1):
        body = _body(n, item)
        if body.key in bodies:
            raise CatalogueFileError(f"body {n}: the key {body.key} is used twice")
        bodies[body.key] = body
    categories: dict[str, Category] = {}
    keypads: dict[str, str] = {}
    for n, item in enumerate(_items(data, "categories"), 1):
        cat = _category(n, item, bodies)
        if cat.key in categories:
            raise CatalogueFileError(f"category {n}: the key {cat.key} is used twice")
        if cat.keypad in keypads:
            raise CatalogueFileError(
                f"category {n} ({cat.key}): keypad code {cat.keypad} is already {keypads[cat.keypad]}'s"
            )
        categories[cat.key] = cat
        keypads[cat.keypad] = cat.key
    return Catalogue(bodies, categories)


def _items(data: dict[str, Any], name: str) -> list[Any]:
    items = data.get(name) or []
    if not isinstance(items, list):
        raise CatalogueFileError(f"{name} is a list")
    return items


def _key(where: str, value: object) -> str:
    key = str(value or "").strip()
    if not _KEY.match(key):
        raise CatalogueFileError(f"{where}: a key of lower-case letters, digits, '-' and '_' is needed")
    return key


def _names(where: str, value: object) -> tuple[str, str]:
    if not isinstance(value, dict):
        raise CatalogueFileError(f"{where}: a name in Arabic and English is needed ({{ar: ..., en: ...}})")
    ar, en = str(value.get("ar") or "").strip(), str(value.get("en") or "").strip()
    if not ar:
        raise CatalogueFileError(f"{where}: the Arabic name is missing")
    if not _ARABIC.search(ar):
        raise CatalogueFileError(f"{where}: the Arabic name is not in Arabic letters")
    if not en:
        raise CatalogueFileError(f"{where}: the English name is missing")
    if max(len(ar), len(en)) > NAME_LIMIT:
        raise CatalogueFileError(f"{where}: a name has at most {NAME_LIMIT} characters")
    return ar, en


def _body(n: int, item: object) -> Body:
    if not isinstance(item, dict):
        raise CatalogueFileError(f"body {n}: a key, a kind and a name are needed")
    key = _key(f"body {n}", item.get("key"))
    where = f"body {n} ({key})"
    unknown = set(item) - {"key", "kind", "name", "municipality"}
    if unknown:
        raise CatalogueFileError(f"{where}: unknown fields: {', '.join(sorted(unknown))}")
    kind = str(item.get("kind") or "")
    if kind not in KINDS:
        raise CatalogueFileError(f"{where}: the kind is {' or '.join(KINDS)}")
    ar, en = _names(where, item.get("name"))
    municipality = item.get("municipality")
    if municipality is not None and kind != "municipal":
        raise CatalogueFileError(f"{where}: only a municipal body belongs to one municipality")
    return Body(key, kind, ar, en, str(municipality) if municipality is not None else None)


def _category(n: int, item: object, bodies: dict[str, Body]) -> Category:
    if not isinstance(item, dict):
        raise CatalogueFileError(f"category {n}: a key, a keypad code, a name, SLA targets and a body")
    key = _key(f"category {n}", item.get("key"))
    where = f"category {n} ({key})"
    unknown = set(item) - {"key", "keypad", "name", "questions", "sla", "body", "overrides"}
    if unknown:
        raise CatalogueFileError(f"{where}: unknown fields: {', '.join(sorted(unknown))}")
    keypad = str(item.get("keypad") if item.get("keypad") is not None else "")
    if not _KEYPAD.match(keypad):
        raise CatalogueFileError(f"{where}: the keypad code is a number from 1 to 99")
    ar, en = _names(where, item.get("name"))
    body = str(item.get("body") or "")
    if body not in bodies:
        raise CatalogueFileError(f"{where}: unknown body {body!r}" if body else f"{where}: a body is needed")
    overrides = item.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise CatalogueFileError(f"{where}: overrides map a municipality code to a body key")
    for code, other in overrides.items():
        if str(other) not in bodies:
            raise CatalogueFileError(f"{where}: the override for {code} names an unknown body {other!r}")
    return Category(
        key=key, keypad=keypad, name_ar=ar, name_en=en, targets=_targets(where, item.get("sla")),
        body=body, questions=_questions(where, item.get("questions")),
        overrides={str(code): str(other) for code, other in overrides.items()},
    )  # fmt: skip


def _targets(where: str, sla: object) -> Targets:
    if not isinstance(sla, dict) or set(sla) != {"first_response_hours", "resolution_hours"}:
        raise CatalogueFileError(f"{where}: sla has first_response_hours and resolution_hours")
    try:
        return Targets(float(sla["first_response_hours"]), float(sla["resolution_hours"]))
    except (TypeError, ValueError) as exc:
        raise CatalogueFileError(
            f"{where}: SLA targets are working hours, 0 < first response <= resolution"
        ) from exc


def _questions(where: str, value: object) -> tuple[Question, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CatalogueFileError(f"{where}: questions is a list of {{key, ar, en}}")
    out: list[Question] = []
    for i, q in enumerate(value, 1):
        if not isinstance(q, dict):
            raise CatalogueFileError(f"{where}: question {i} is {{key, ar, en}}")
        qkey = _key(f"{where}, question {i}", q.get("key"))
        ar, en = str(q.get("ar") or "").strip(), str(q.get("en") or "").strip()
        if not ar or not en:
            raise CatalogueFileError(f"{where}, question {qkey}: the question in Arabic and English")
        if max(len(ar), len(en)) > QUESTION_LIMIT:
            raise CatalogueFileError(f"{where}, question {qkey}: at most {QUESTION_LIMIT} characters")
        if qkey in {x.key for x in out}:
            raise CatalogueFileError(f"{where}: question {qkey} is asked twice")
        out.append(Question(qkey, ar, en))
    return tuple(out)
