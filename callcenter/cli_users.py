"""``callcenter user``: staff accounts from the command line — the first admin, listing,
disabling and enabling, one-time links. Passwords come from a prompt or stdin, never an argument."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.accounts.roles import Role
from callcenter.cli_common import T, console, domain, err, run, with_engine
from callcenter.settings import Settings

user_app = typer.Typer(
    help="Staff accounts: the first admin, listing, disabling, new links.", no_args_is_help=True
)


# -- staff accounts -----------------------------------------------------------------------


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _read_password(from_stdin: bool) -> str:
    """From a hidden prompt with confirmation, or one line of stdin: never from an argument
    (it would stay in the shell history and the process list)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not _stdin_is_tty():
        err.print("[red]stdin is not a terminal: pipe the password in with --password-stdin[/red]")
        raise typer.Exit(2)
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[Role, typer.Option(help="the user's role")],
    name: Annotated[str, typer.Option(help="the name shown on the pages")] = "",
    municipality: Annotated[
        list[str] | None, typer.Option(help="municipality code the user is limited to (repeatable)")
    ] = None,
    language: Annotated[str, typer.Option(help="ar | en")] = "ar",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a user with a password (the first admin): asked twice, hidden, or read from stdin."""
    from callcenter.accounts import passwords
    from callcenter.accounts.admin import municipality_ids_for_codes
    from callcenter.accounts.service import create_user
    from callcenter.errors import CallCenterError
    from callcenter.models import utcnow

    if language not in ("ar", "en"):
        err.print("[red]--language is ar or en[/red]")
        raise typer.Exit(2)
    password = _read_password(password_stdin)
    try:
        passwords.check_policy(password, email=email.strip().casefold(), name=name)
    except passwords.WeakPassword as exc:
        err.print(f"[red]{exc.reason}[/red]")
        raise typer.Exit(2) from exc

    async def body(engine: AsyncEngine) -> str:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            ids, unknown = await municipality_ids_for_codes(session, municipality or [])
            if unknown:
                raise CallCenterError(f"no municipality with the code {', '.join(unknown)}")
            invitation = await create_user(
                session,
                email=email,
                role=role,
                name=name,
                password=password,
                municipalities=ids,
                language=language,
                actor="cli",
                now=utcnow(),
            )
            return invitation.user.email

    created = domain(lambda: run(lambda s: with_engine(s, body)))
    console.print(f"user {created} created ({role.value})")


@user_app.command("list")
def user_list() -> None:
    """List the staff accounts, 50 at a time from the database."""
    from callcenter.accounts.admin import UserFilter, UserRow, list_users

    async def body(engine: AsyncEngine) -> list[UserRow]:
        rows: list[UserRow] = []
        async with AsyncSession(engine, expire_on_commit=False) as session:
            page = 1
            while True:
                listing = await list_users(session, UserFilter(page=page))
                rows += listing.rows
                if not listing.has_next:
                    return rows
                page += 1

    table = Table("id", "e-mail", "name", "role", "state", "two-step", "municipalities", "last login")
    for row in run(lambda s: with_engine(s, body)):
        u = row.user
        table.add_row(
            str(u.id),
            u.email,
            u.name,
            u.role,
            row.state.value,
            "on" if u.totp_secret else "off",
            ", ".join(m.code for m in row.municipalities) or "all",
            u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else "-",
        )
    console.print(table)


def _user_action(email: str, action: Callable[[AsyncSession, Any, Settings], Awaitable[T]]) -> T:
    from callcenter.accounts.service import find_user
    from callcenter.errors import NotFound

    async def main(settings: Settings) -> T:
        async def body(engine: AsyncEngine) -> T:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                user = await find_user(session, email)
                if user is None:
                    raise NotFound(f"no user with the e-mail address {email.strip()}")
                return await action(session, user, settings)

        return await with_engine(settings, body)

    return domain(lambda: run(main))


@user_app.command("disable")
def user_disable(email: str) -> None:
    """Disable a user: their sessions end at once and they can no longer log in."""
    from callcenter.accounts.service import set_disabled
    from callcenter.models import utcnow

    async def action(session: AsyncSession, user: Any, _: Settings) -> None:
        await set_disabled(session, user, True, actor="cli", now=utcnow())

    _user_action(email, action)
    console.print(f"user {email.strip().casefold()} disabled")


@user_app.command("enable")
def user_enable(email: str) -> None:
    """Enable a disabled user again."""
    from callcenter.accounts.service import set_disabled
    from callcenter.models import utcnow

    async def action(session: AsyncSession, user: Any, _: Settings) -> None:
        await set_disabled(session, user, False, actor="cli", now=utcnow())

    _user_action(email, action)
    console.print(f"user {email.strip().casefold()} enabled")


@user_app.command("reset")
def user_reset(email: str) -> None:
    """Print a one-time link that sets a new password; the old password and sessions stop working."""
    from datetime import timedelta

    from callcenter.accounts.service import reset_invitation
    from callcenter.models import utcnow

    async def action(session: AsyncSession, user: Any, settings: Settings) -> tuple[str, str]:
        token = await reset_invitation(
            session, user, actor="cli", valid=timedelta(hours=settings.invite_valid_hours), now=utcnow()
        )
        return f"{settings.public_base_url.rstrip('/')}/invite/{token}", str(user.invite_expires_at)

    link, until = _user_action(email, action)
    console.print(f"one-time link (valid until {until}, shown once):")
    print(link)
