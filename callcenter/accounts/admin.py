"""What the administration of staff accounts asks of the database: the user list with its
filters, the municipality choices, checking a posted user form, and an edit that keeps the
audit trail and ends the sessions whose rights it changed.

Messages are catalogue ids (``N_``); the pages translate them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts.roles import Role
from callcenter.accounts.service import InvalidEmail, normalize_email, scope_of, set_scope, user_view
from callcenter.accounts.sessions import revoke_all
from callcenter.audit import Actor, audit
from callcenter.messages import N_

PER_PAGE = 50
NAME_MAX = 200
EMAIL_MAX = 254
QUERY_MAX = 254
LANGUAGES = ("ar", "en")

USER = models.table(models.User)
USER_MUNICIPALITY = models.table(models.UserMunicipality)
MUNICIPALITY = models.table(models.Municipality)


class UserState(StrEnum):
    active = "active"  # has a password, may log in
    invited = "invited"  # no password yet: waits for the one-time link
    disabled = "disabled"  # may not log in, whatever the password


def state_of(user: models.User) -> UserState:
    if user.disabled_at is not None:
        return UserState.disabled
    if user.password_hash is None:
        return UserState.invited
    return UserState.active


@dataclass(frozen=True, slots=True)
class MunicipalityChoice:
    id: int
    code: str
    name_ar: str
    name_en: str

    def name(self, language: str) -> str:
        return self.name_en if language == "en" and self.name_en else self.name_ar


@dataclass(frozen=True, slots=True)
class UserRow:
    user: models.User
    state: UserState
    municipalities: list[MunicipalityChoice]  # empty: every municipality


@dataclass(frozen=True, slots=True)
class UserPage:
    rows: list[UserRow]
    page: int
    total: int
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


class UserFilterError(ValueError):
    """A filter of the user list that cannot be used; ``reason`` is a catalogue id."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True, slots=True)
class UserFilter:
    role: Role | None = None
    query: str = ""  # a piece of the e-mail address or the name
    page: int = 1
    #: the listing admin's municipalities (empty: all); a scoped admin sees only the users
    #: whose every municipality is one of theirs
    within: frozenset[int] = frozenset()


def manages(within: frozenset[int], scope: Iterable[int]) -> bool:
    """Whether an admin scoped to ``within`` (empty: everywhere) may manage a user scoped to
    ``scope`` (empty: everywhere): only when the user's reach is inside the admin's."""
    ids = set(scope)
    return not within or (bool(ids) and ids <= within)


def parse_user_filter(
    *, role: str | None, query: str | None, page: str | None, within: frozenset[int] = frozenset()
) -> UserFilter:
    """The list's filters from the query string; raise UserFilterError for a bad one."""
    chosen: Role | None = None
    if role:
        try:
            chosen = Role(role)
        except ValueError:
            raise UserFilterError("role", N_("Choose a role from the list.")) from None
    text = (query or "").strip()
    if len(text) > QUERY_MAX:
        raise UserFilterError("q", N_("The search text is too long."))
    number = 1
    if page:
        if not page.isascii() or not page.isdigit() or len(page) > 6 or int(page) < 1:
            raise UserFilterError("page", N_("The page number is not valid."))
        number = int(page)
    return UserFilter(chosen, text, number, within)


async def list_users(session: AsyncSession, flt: UserFilter, *, per_page: int = PER_PAGE) -> UserPage:
    """One page of users, ordered by e-mail address, with each one's municipalities."""
    conditions = []
    if flt.role is not None:
        conditions.append(USER.c.role == flt.role.value)
    if flt.query:
        conditions.append(
            or_(
                USER.c.email.icontains(flt.query, autoescape=True),
                USER.c.name.icontains(flt.query, autoescape=True),
            )
        )
    if flt.within:
        mine = USER_MUNICIPALITY.c.user_id == USER.c.id
        conditions.append(exists().where(mine))
        conditions.append(
            ~exists().where(mine, USER_MUNICIPALITY.c.municipality_id.not_in(sorted(flt.within)))
        )
    total = int(
        (await session.execute(select(func.count()).select_from(USER).where(*conditions))).scalar_one()
    )
    users = list(
        (
            await session.execute(
                select(models.User)
                .where(*conditions)
                .order_by(models.User.email)
                .offset((flt.page - 1) * per_page)
                .limit(per_page)
            )
        ).scalars()
    )
    scopes = await municipalities_of(session, [u.id for u in users if u.id is not None])
    rows = [UserRow(u, state_of(u), scopes.get(u.id or 0, [])) for u in users]
    return UserPage(rows, flt.page, total, per_page)


async def municipalities_of(
    session: AsyncSession, user_ids: Sequence[int]
) -> dict[int, list[MunicipalityChoice]]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(
            USER_MUNICIPALITY.c.user_id,
            MUNICIPALITY.c.id,
            MUNICIPALITY.c.code,
            MUNICIPALITY.c.name_ar,
            MUNICIPALITY.c.name_en,
        )
        .join(MUNICIPALITY, MUNICIPALITY.c.id == USER_MUNICIPALITY.c.municipality_id)
        .where(USER_MUNICIPALITY.c.user_id.in_(list(user_ids)))
        .order_by(MUNICIPALITY.c.name_ar)
    )
    out: dict[int, list[MunicipalityChoice]] = {}
    for user_id, mid, code, name_ar, name_en in rows:
        out.setdefault(int(user_id), []).append(MunicipalityChoice(int(mid), code, name_ar, name_en))
    return out


async def municipality_choices(
    session: AsyncSession, within: frozenset[int] = frozenset()
) -> list[MunicipalityChoice]:
    """The municipalities an admin may give (a country's worth at most: about a hundred rows)."""
    query = select(MUNICIPALITY.c.id, MUNICIPALITY.c.code, MUNICIPALITY.c.name_ar, MUNICIPALITY.c.name_en)
    if within:
        query = query.where(MUNICIPALITY.c.id.in_(sorted(within)))
    rows = await session.execute(query.order_by(MUNICIPALITY.c.name_ar))
    return [MunicipalityChoice(int(r[0]), r[1], r[2], r[3]) for r in rows]


async def municipality_ids_for_codes(
    session: AsyncSession, codes: Iterable[str]
) -> tuple[list[int], list[str]]:
    """The ids of municipality ``codes`` and the codes that are not in the register."""
    wanted = sorted({c.strip() for c in codes if c.strip()})
    if not wanted:
        return [], []
    rows = await session.execute(
        select(MUNICIPALITY.c.code, MUNICIPALITY.c.id).where(MUNICIPALITY.c.code.in_(wanted))
    )
    found = {code: int(mid) for code, mid in rows}
    return sorted(found.values()), [c for c in wanted if c not in found]


class InvalidUserForm(ValueError):
    """The posted user form has mistakes: field -> catalogue id."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class UserInput:
    name: str
    role: Role
    municipalities: list[int] = field(default_factory=list)
    email: str = ""  # a new user only
    language: str = "ar"  # a new user only


async def check_user_form(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    municipalities: Sequence[str],
    email: str | None = None,
    language: str | None = None,
    within: frozenset[int] = frozenset(),
) -> UserInput:
    """Check a posted user form (``email`` and ``language`` for an invitation only) and return
    its values; raise InvalidUserForm with every mistake at once. An admin scoped to
    ``within`` gives only their own municipalities, and at least one of them."""
    errors: dict[str, str] = {}
    address = ""
    if email is not None:
        if len(email.strip()) > EMAIL_MAX:
            errors["email"] = N_("The e-mail address must have at most 254 characters.")
        else:
            try:
                address = normalize_email(email)
            except InvalidEmail as exc:
                errors["email"] = exc.message
    clean_name = name.strip()
    if len(clean_name) > NAME_MAX:
        errors["name"] = N_("The name must have at most 200 characters.")
    elif any(ord(ch) < 0x20 for ch in clean_name):
        errors["name"] = N_("The name must be on one line.")
    chosen = Role.agent
    try:
        chosen = Role(role)
    except ValueError:
        errors["role"] = N_("Choose a role from the list.")
    lang = "ar"
    if language is not None:
        if language not in LANGUAGES:
            errors["language"] = N_("Choose Arabic or English.")
        else:
            lang = language
    ids: list[int] = []
    if any(not m.isascii() or not m.isdigit() or len(m) > 18 for m in municipalities):
        errors["municipalities"] = N_("Choose municipalities from the list.")
    else:
        ids = sorted({int(m) for m in municipalities})
        if ids:
            known = set(
                (await session.execute(select(MUNICIPALITY.c.id).where(MUNICIPALITY.c.id.in_(ids)))).scalars()
            )
            if set(ids) - known or (within and not set(ids) <= within):
                errors["municipalities"] = N_("Choose municipalities from the list.")
        if within and not ids:
            errors["municipalities"] = N_("Choose at least one of your municipalities.")
    if errors:
        raise InvalidUserForm(errors)
    return UserInput(clean_name, chosen, ids, address, lang)


class SelfLockout(ValueError):
    """An admin about to take away their own access; ``reason`` is a catalogue id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def update_user(
    session: AsyncSession,
    user: models.User,
    values: UserInput,
    *,
    actor: Actor,
    now: datetime,
    keep_session: str | None = None,
) -> int | None:
    """Save name, role and municipalities. When the role or the scope changes the user's
    sessions end (``keep_session`` excepted), so the new rights apply at the next request.
    Returns the number of sessions ended, or None when nothing changed (and nothing is audited)."""
    assert user.id is not None
    if actor.id == user.id and values.role != Role(user.role):
        raise SelfLockout(N_("You cannot change your own role. Ask another administrator."))
    scope = await scope_of(session, user.id)
    before = user_view(user, scope)
    rights_change = values.role.value != user.role or values.municipalities != scope
    if values.name == user.name and not rights_change:
        return None
    user.name = values.name
    user.role = values.role.value
    ended = 0
    if values.municipalities != scope:
        await set_scope(session, user.id, values.municipalities)
    if rights_change:
        ended = await revoke_all(session, user.id, now=now, keep=keep_session)
    audit(
        session,
        actor=actor,
        action="user.update",
        target=f"user:{user.id}",
        before=before,
        after=user_view(user, values.municipalities),
        sessions_ended=ended,
    )
    return ended


def check_not_self(actor: Actor, user: models.User, reason: str) -> None:
    """Raise SelfLockout when ``actor`` is ``user`` (disabling or resetting oneself)."""
    if actor.id is not None and actor.id == user.id:
        raise SelfLockout(reason)
