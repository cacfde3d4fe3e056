"""The citizen SMS texts as admins edit them in the app: kept in ``request_text``, they win over
the data directory's ``request_texts.yaml``, which wins over the packaged defaults
(``citizen_texts``). Each save is checked first (``text_preview.check``) and audited with the
text before and after; restoring the default deletes the row (audited too).

Whoever sends a text asks ``current_texts``: one small query (the table's row count and last
change) tells whether this process's copy is still the database's, and the rows are read
again only when it is not, so an admin's change reaches every process (web, worker, AGI) at
its next message. A row that no longer suits its default (after an upgrade changed the
placeholders a text may use) is logged and skipped: the citizen gets the file's or the
default text rather than a broken one.

Usage::

    texts = await current_texts(settings, engine)
    texts.say("created", "ar", reference=..., category=..., due=...)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.requests.citizen_texts import (
    LANGUAGES,
    CitizenTexts,
    allowed_placeholders,
    citizen_texts,
    defaults,
    template_fault,
)
from callcenter.settings import Settings

log = logging.getLogger(__name__)

TEXT = models.table(models.RequestText)
SECTIONS: Final = ("texts", "statuses")
Section = Literal["texts", "statuses"]
Source = Literal["default", "file", "database"]


@dataclass(frozen=True, slots=True)
class Edited:
    """A text as saved in the app."""

    section: str
    name: str
    ar: str
    en: str
    updated_by: str
    updated_at: datetime | None


def known(section: str, name: str) -> bool:
    """Whether ``section.name`` is a text citizens get (the defaults list every one)."""
    base = defaults()
    return (section == "texts" and name in base.texts) or (section == "statuses" and name in base.statuses)


def default_of(section: str, name: str) -> dict[str, str]:
    base = defaults()
    return (base.texts if section == "texts" else base.statuses)[name]


def fits(section: str, name: str, pair: dict[str, str]) -> bool:
    """A stored text is used only if it still suits its default: both languages, only the
    placeholders the default uses."""
    if not known(section, name):
        return False
    default = default_of(section, name)
    return all(
        pair.get(lang, "").strip() and template_fault(pair[lang], allowed_placeholders(default[lang])) is None
        for lang in LANGUAGES
    )


# -- reading ------------------------------------------------------------------------------------


async def edited(conn: AsyncConnection) -> dict[tuple[str, str], Edited]:
    """Every text saved in the app, by (section, name)."""
    rows = await conn.execute(select(TEXT).order_by(TEXT.c.section, TEXT.c.name))
    return {
        (row["section"], row["name"]): Edited(
            row["section"], row["name"], row["ar"], row["en"], row["updated_by"], row["updated_at"]
        )
        for row in rows.mappings()
    }


def merged(base: CitizenTexts, rows: dict[tuple[str, str], Edited]) -> CitizenTexts:
    """``base`` (the defaults and the file) with the texts saved in the app over it."""
    layers: dict[str, dict[str, dict[str, str]]] = {"texts": {}, "statuses": {}}
    for (section, name), row in rows.items():
        pair = {"ar": row.ar, "en": row.en}
        if fits(section, name, pair):
            layers[section][name] = pair
        else:
            log.error("the edited text %s.%s no longer suits its default: not used", section, name)
    if not layers["texts"] and not layers["statuses"]:
        return base
    return CitizenTexts({**base.texts, **layers["texts"]}, {**base.statuses, **layers["statuses"]})


def source_of(section: str, name: str, settings: Settings, rows: dict[tuple[str, str], Edited]) -> Source:
    """Where the text a citizen gets comes from."""
    row = rows.get((section, name))
    if row is not None and fits(section, name, {"ar": row.ar, "en": row.en}):
        return "database"
    base, packaged = citizen_texts(settings), defaults()
    if section == "texts":
        return "file" if base.texts[name] != packaged.texts[name] else "default"
    return "file" if base.statuses[name] != packaged.statuses[name] else "default"


# -- this process's copy ------------------------------------------------------------------------


@dataclass(slots=True)
class _Copy:
    stamp: tuple[Any, ...]
    rows: dict[tuple[str, str], Edited]


_COPIES: dict[str, _Copy] = {}  # by database URL: the tests use two databases in one process


def _key(settings: Settings) -> str:
    return str(settings.database_url or "")


async def refresh(settings: Settings, engine: AsyncEngine) -> dict[tuple[str, str], Edited]:
    """The texts saved in the app, read again only if they changed since this process last
    read them (one small query otherwise). The database away, the last copy serves: a citizen
    gets a text a little old rather than none."""
    try:
        async with engine.connect() as conn:
            return await refresh_on(settings, conn)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("the edited texts were not read again (%s): the last copy serves", exc)
        copy = _COPIES.get(_key(settings))
        return copy.rows if copy else {}


async def refresh_on(settings: Settings, conn: AsyncConnection) -> dict[tuple[str, str], Edited]:
    """``refresh`` on a connection the caller holds."""
    count, last = (await conn.execute(select(func.count(), func.max(TEXT.c.updated_at)))).one()
    stamp = (int(count), last)
    copy = _COPIES.get(_key(settings))
    if copy is None or copy.stamp != stamp:
        copy = _COPIES[_key(settings)] = _Copy(stamp, await edited(conn))
    return copy.rows


async def current_texts(settings: Settings, engine: AsyncEngine) -> CitizenTexts:
    """The texts a citizen gets now: saved in the app, else in the file, else the defaults."""
    return merged(citizen_texts(settings), await refresh(settings, engine))


async def texts_on(settings: Settings, conn: AsyncConnection) -> CitizenTexts:
    """``current_texts`` on a connection the caller holds."""
    return merged(citizen_texts(settings), await refresh_on(settings, conn))


def cached_texts(settings: Settings) -> CitizenTexts:
    """As ``current_texts`` from this process's copy, without asking the database (after a
    ``refresh`` in the same task: a synchronous caller's texts)."""
    copy = _COPIES.get(_key(settings))
    return merged(citizen_texts(settings), copy.rows if copy else {})


# -- saving -------------------------------------------------------------------------------------


async def save(
    session: AsyncSession,
    section: str,
    name: str,
    pair: dict[str, str],
    *,
    actor: str | Actor,
    before: dict[str, str],
) -> None:
    """Keep the text as edited (checked before: ``text_preview.check``); audited with the text
    citizens got ``before``."""
    if not fits(section, name, pair):
        raise ValueError(f"{section}.{name}: check the text before saving it")
    conn = await session.connection()
    values = {
        "ar": pair["ar"],
        "en": pair["en"],
        "updated_by": str(actor)[:100],
        "updated_at": models.utcnow(),
    }
    found = await conn.execute(select(TEXT.c.id).where(TEXT.c.section == section, TEXT.c.name == name))
    row_id = found.scalar()
    if row_id is None:
        await conn.execute(insert(TEXT).values(section=section, name=name, **values))
    else:
        await conn.execute(update(TEXT).where(TEXT.c.id == row_id).values(**values))
    audit(
        session, actor=actor, action="requests.texts.save", target=f"request_text:{section}.{name}",
        before=dict(before), after={"ar": pair["ar"], "en": pair["en"]},
    )  # fmt: skip


async def restore_default(session: AsyncSession, section: str, name: str, *, actor: str | Actor) -> bool:
    """Forget the app's text: the file's, or the default, applies again. False when there was none."""
    conn = await session.connection()
    row = (
        await conn.execute(select(TEXT.c.ar, TEXT.c.en).where(TEXT.c.section == section, TEXT.c.name == name))
    ).first()
    if row is None:
        return False
    await conn.execute(delete(TEXT).where(TEXT.c.section == section, TEXT.c.name == name))
    audit(
        session, actor=actor, action="requests.texts.restore", target=f"request_text:{section}.{name}",
        before={"ar": row.ar, "en": row.en},
    )  # fmt: skip
    return True
