"""merge duplicate municipalities

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Before the register was matched through folded names, the citizen import created a new
municipality for every spelling it did not know: ``طرابلس``, ``طرابلس `` and ``Tripoli``
could be three rows. Rows whose code, Arabic name, Latin name or an alias fold to the same
key are one municipality: the oldest (lowest id) survives; citizens, tickets, staff scopes,
aliases and campaign audiences are repointed to it; the others' codes and names become its
aliases; the duplicates are deleted. A data migration: the downgrade cannot split them again.

The folding is copied here on purpose (callcenter.citizens.fields.fold may change later,
and a migration must do tomorrow what it did today).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_HARAKAT = "".join(chr(c) for c in range(0x064B, 0x0653)) + "\u0670\u0640"
_FOLD = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ؤ": "و", "ئ": "ي", "ة": "ه", "ى": "ي"}
    | {"ی": "ي", "ک": "ك", "_": " "}
    | dict.fromkeys(_INVISIBLE + _HARAKAT + "ء")
)


def fold(text: str) -> str:
    return " ".join(text.translate(_FOLD).casefold().split())


def _groups(rows: list[Any], aliases: list[Any]) -> dict[int, list[int]]:
    """survivor id -> the duplicates' ids (union-find over shared keys)."""
    parent: dict[int, int] = {row.id: row.id for row in rows}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    keyed = [(row.id, value) for row in rows for value in (row.code, row.name_ar, row.name_en)]
    keyed += [(a.municipality_id, a.alias) for a in aliases if a.municipality_id in parent]
    for municipality_id, value in keyed:
        key = fold(value or "")
        if not key:
            continue
        other = owner.setdefault(key, municipality_id)
        a, b = find(other), find(municipality_id)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the lowest id is the root
    groups: dict[int, list[int]] = {}
    for i in sorted(parent):
        root = find(i)
        if root != i:
            groups.setdefault(root, []).append(i)
    return groups


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, code, name_ar, name_en FROM municipality ORDER BY id")).all()
    aliases = bind.execute(sa.text("SELECT id, municipality_id, alias, key FROM municipality_alias")).all()
    groups = _groups(rows, aliases)
    if not groups:
        return
    by_id = {row.id: row for row in rows}
    survivor_of = {dup: root for root, dups in groups.items() for dup in dups}
    params = [{"dup": dup, "root": root} for dup, root in survivor_of.items()]
    for table in ("citizen", "ticket", "municipality_alias"):
        bind.execute(
            sa.text(f"UPDATE {table} SET municipality_id = :root WHERE municipality_id = :dup"), params
        )
    # user_municipality's key is (user_id, municipality_id): add the survivor where missing.
    bind.execute(
        sa.text(
            "INSERT INTO user_municipality (user_id, municipality_id)"
            " SELECT DISTINCT user_id, CAST(:root AS BIGINT) FROM user_municipality WHERE municipality_id = :dup"
            " AND user_id NOT IN (SELECT user_id FROM user_municipality"
            " WHERE municipality_id = CAST(:root AS BIGINT))"
        ),
        params,
    )
    bind.execute(sa.text("DELETE FROM user_municipality WHERE municipality_id = :dup"), params)
    _repoint_audiences(bind, {by_id[dup].code: by_id[root].code for dup, root in survivor_of.items()})
    # The duplicates' codes and names become the survivor's aliases (one per key).
    taken = {fold(a.alias) for a in aliases}
    for root in groups:
        taken |= {fold(value or "") for value in (by_id[root].code, by_id[root].name_ar, by_id[root].name_en)}
    new_aliases: list[dict[str, Any]] = []
    for root, dups in groups.items():
        for dup in dups:
            for value in (by_id[dup].code, by_id[dup].name_ar, by_id[dup].name_en):
                text = " ".join((value or "").split())[:200]
                key = fold(text)
                if key and key not in taken:
                    taken.add(key)
                    new_aliases.append({"municipality_id": root, "alias": text, "key": key})
    if new_aliases:
        bind.execute(
            sa.text(
                "INSERT INTO municipality_alias (municipality_id, alias, key)"
                " VALUES (:municipality_id, :alias, :key)"
            ),
            new_aliases,
        )
    _audit(bind, groups, by_id)
    bind.execute(sa.text("DELETE FROM municipality WHERE id = :dup"), params)


def _audit(bind: sa.Connection, groups: dict[int, list[int]], by_id: dict[int, Any]) -> None:
    """One audit row per merge: the log says where each duplicate went."""
    now = datetime.now(UTC)
    rows = [
        {
            "actor": "migration",
            "action": "municipality.merge",
            "target": f"municipality:{root}",
            "details": {
                "revision": revision,
                "merged": [
                    {
                        "id": dup,
                        "code": by_id[dup].code,
                        "name_ar": by_id[dup].name_ar,
                        "name_en": by_id[dup].name_en,
                    }
                    for dup in dups
                ],
            },
            "created_at": now,
        }
        for root, dups in groups.items()
    ]
    bind.execute(
        sa.text(
            "INSERT INTO auditlog (actor, action, target, details, address, created_at)"
            " VALUES (:actor, :action, :target, :details, '', :created_at)"
        ).bindparams(
            sa.bindparam("details", type_=sa.JSON),
            sa.bindparam("created_at", type_=sa.DateTime(timezone=True)),
        ),
        rows,
    )


def _repoint_audiences(bind: sa.Connection, codes: dict[str, str]) -> None:
    """Campaign audiences name municipalities by code: a duplicate's code becomes the survivor's."""
    campaigns = bind.execute(sa.text("SELECT id, audience FROM campaign")).all()
    for campaign_id, raw in campaigns:
        audience = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(audience, dict) or not isinstance(audience.get("municipalities"), list):
            continue
        before = audience["municipalities"]
        after: list[Any] = []
        for code in before:
            code = codes.get(code, code) if isinstance(code, str) else code
            if code not in after:
                after.append(code)
        if after != before:
            audience["municipalities"] = after
            bind.execute(
                sa.text("UPDATE campaign SET audience = :audience WHERE id = :id").bindparams(
                    sa.bindparam("audience", type_=sa.JSON)
                ),
                {"audience": audience, "id": campaign_id},
            )


def downgrade() -> None:
    """Nothing to undo in the schema; merged municipalities stay merged."""
