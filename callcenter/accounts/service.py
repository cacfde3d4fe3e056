"""Account actions shared by the pages and the CLI: create, invite, log in, change password,
enrol a second factor, disable. Each one writes its audit row in the caller's transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter import models
from callcenter.accounts import passwords, totp
from callcenter.accounts.roles import MFA_REQUIRED, Role
from callcenter.accounts.sessions import revoke_all
from callcenter.audit import Actor, audit
from callcenter.errors import CallCenterError, Conflict, NotFound
from callcenter.messages import N_

USER = models.table(models.User)
USER_MUNICIPALITY = models.table(models.UserMunicipality)


class InvalidEmail(CallCenterError):
    error_id = "invalid_email"


def normalize_email(email: str) -> str:
    value = email.strip().casefold()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or len(value) > 254 or any(c.isspace() for c in value):
        raise InvalidEmail(N_("Enter an e-mail address like name@example.ly."))
    return value


def user_view(user: models.User, municipalities: list[int] | None = None) -> dict[str, Any]:
    """What the audit log keeps of a user (never a hash or a secret)."""
    view: dict[str, Any] = {
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "language": user.language,
        "disabled": user.disabled_at is not None,
        "totp": user.totp_secret is not None,
    }
    if municipalities is not None:
        view["municipalities"] = sorted(municipalities)
    return view


async def get_user(session: AsyncSession, user_id: int) -> models.User:
    user = await session.get(models.User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def find_user(session: AsyncSession, email: str) -> models.User | None:
    result = await session.execute(select(models.User).where(models.User.email == email.strip().casefold()))  # type: ignore[arg-type]
    return result.scalar_one_or_none()


async def scope_of(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.execute(
        select(USER_MUNICIPALITY.c.municipality_id).where(USER_MUNICIPALITY.c.user_id == user_id)
    )
    return sorted(int(r[0]) for r in rows)


async def set_scope(session: AsyncSession, user_id: int, municipality_ids: list[int]) -> None:
    await session.execute(delete(USER_MUNICIPALITY).where(USER_MUNICIPALITY.c.user_id == user_id))
    if municipality_ids:
        await session.execute(
            USER_MUNICIPALITY.insert(),
            [{"user_id": user_id, "municipality_id": m} for m in sorted(set(municipality_ids))],
        )


def _invite_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Invitation:
    user: models.User
    token: str  # for the link /invite/<token>; shown once


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    role: Role,
    actor: Actor | str,
    name: str = "",
    password: str | None = None,
    municipalities: list[int] | None = None,
    language: str = "ar",
    invite_valid: timedelta = timedelta(hours=72),
    now: datetime,
) -> Invitation:
    """A new user, with a password (the CLI) or an invitation link to set one (the app)."""
    address = normalize_email(email)
    if await find_user(session, address) is not None:
        raise Conflict(N_("A user with this e-mail address exists already."), email=address)
    user = models.User(
        email=address, name=name.strip()[:200], role=role.value, language=language, created_at=now
    )
    token = ""
    if password is not None:
        passwords.check_policy(password, email=address, name=name)
        user.password_hash = passwords.hash_password(password)
        user.password_changed_at = now
    else:
        token = secrets.token_urlsafe(32)
        user.invite_hash = _invite_hash(token)
        user.invite_expires_at = now + invite_valid
    session.add(user)
    await session.flush()
    assert user.id is not None
    await set_scope(session, user.id, municipalities or [])
    audit(
        session,
        actor=actor,
        action="user.create",
        target=f"user:{user.id}",
        after=user_view(user, municipalities or []),
    )
    return Invitation(user, token)


async def reset_invitation(
    session: AsyncSession, user: models.User, *, actor: Actor | str, valid: timedelta, now: datetime
) -> str:
    """A fresh one-time link that sets a new password; the old password and sessions stop working.

    The second factor is cleared too (the usual reason for a reset is a lost phone): a role that
    needs one enrols again at its next login."""
    token = secrets.token_urlsafe(32)
    user.invite_hash = _invite_hash(token)
    user.invite_expires_at = now + valid
    user.password_hash = None
    had_totp = user.totp_secret is not None
    user.totp_secret = None
    user.totp_last_step = None
    assert user.id is not None
    await revoke_all(session, user.id, now=now)
    audit(session, actor=actor, action="user.password_reset", target=f"user:{user.id}", totp_cleared=had_totp)
    return token


async def user_for_invitation(session: AsyncSession, token: str, *, now: datetime) -> models.User | None:
    if not token or len(token) > 100:
        return None
    result = await session.execute(select(models.User).where(models.User.invite_hash == _invite_hash(token)))  # type: ignore[arg-type]
    user = result.scalar_one_or_none()
    if user is None or user.disabled_at is not None or user.invite_expires_at is None:
        return None
    expires = user.invite_expires_at
    if (expires if expires.tzinfo else expires.replace(tzinfo=now.tzinfo)) <= now:
        return None
    return user


async def set_password(
    session: AsyncSession,
    user: models.User,
    password: str,
    *,
    actor: Actor | str,
    now: datetime,
    keep_session: str | None = None,
) -> None:
    """Check the policy, store the new hash, end every other session of the user."""
    passwords.check_policy(password, email=user.email, name=user.name)
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = now
    user.invite_hash = None
    user.invite_expires_at = None
    assert user.id is not None
    await revoke_all(session, user.id, now=now, keep=keep_session)
    audit(session, actor=actor, action="user.password_change", target=f"user:{user.id}")


async def set_disabled(
    session: AsyncSession, user: models.User, disabled: bool, *, actor: Actor | str, now: datetime
) -> None:
    before = user_view(user)
    user.disabled_at = now if disabled else None
    assert user.id is not None
    if disabled:
        await revoke_all(session, user.id, now=now)
    audit(
        session,
        actor=actor,
        action="user.disable" if disabled else "user.enable",
        target=f"user:{user.id}",
        before=before,
        after=user_view(user),
    )


def stage_after_password(user: models.User) -> str:
    """What a session may do once the password is right."""
    if user.totp_secret is not None:
        return "mfa"
    if Role(user.role) in MFA_REQUIRED:
        return "enrol"
    return "full"


async def confirm_totp(
    session: AsyncSession, user: models.User, secret: str, code: str, *, actor: Actor | str, now: datetime
) -> bool:
    """Enrol ``secret`` once the user proves they have it by a valid code."""
    step = totp.verify(secret, code, last_step=None, now=now.timestamp())
    if step is None:
        return False
    user.totp_secret = secret
    user.totp_last_step = step
    assert user.id is not None
    audit(session, actor=actor, action="user.totp_enrol", target=f"user:{user.id}")
    return True


def check_totp(user: models.User, code: str, *, now: datetime) -> bool:
    """A login's second factor; the accepted step is remembered so the code cannot be replayed."""
    if user.totp_secret is None:
        return False
    step = totp.verify(user.totp_secret, code, last_step=user.totp_last_step, now=now.timestamp())
    if step is None:
        return False
    user.totp_last_step = step
    return True
