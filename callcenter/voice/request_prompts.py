"""The voice prompts of service requests that come from the service catalogue: each
category's name (``svc-cat-<key>``, read in the option 2 menu before "press N") and each
responsible body's (``svc-body-<key>``, read in a status). They are rendered with the rest
(``callcenter prompts render``) whenever the catalogue is loaded or changed; the fixed texts
(``svc-*``, ``month-*``) are in ``prompts/catalogue.yaml``."""

from __future__ import annotations

from callcenter.inquiry.definition import Language
from callcenter.prompts import Prompt, compose_number
from callcenter.requests.catalogue import Catalogue, Category


def category_prompt_id(key: str) -> str:
    return f"svc-cat-{key}"


def body_prompt_id(key: str) -> str:
    return f"svc-body-{key}"


def status_prompt_id(status: str) -> str:
    return f"svc-status-{status}"


def request_prompts(catalogue: Catalogue) -> dict[str, Prompt]:
    prompts: dict[str, Prompt] = {}
    for cat in catalogue.categories.values():
        prompts[category_prompt_id(cat.key)] = Prompt(category_prompt_id(cat.key), cat.name_ar, cat.name_en)
    for body in catalogue.bodies.values():
        prompts[body_prompt_id(body.key)] = Prompt(body_prompt_id(body.key), body.name_ar, body.name_en)
    return prompts


def category_menu(categories: list[Category], language: Language) -> list[str]:
    """ "Choose the kind of request", then each category and the key that picks it."""
    ids = ["svc-choose-category"]
    for cat in categories:
        ids += [category_prompt_id(cat.key), "press", *compose_number(int(cat.keypad), language)]
    return [*ids, "menu-agent"]
