"""``callcenter requests export-open-data`` (the anonymised CSV of requests) and
``callcenter requests open311 issue|list|revoke`` (the keys of Open311 clients); registered
on the ``requests`` command by ``register``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.cli_common import console, domain, run, with_engine
from callcenter.settings import Settings

open311_app = typer.Typer(help="Open311: the keys issued to client applications.", no_args_is_help=True)


def export_open_data(
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, help="the CSV file to write")],
    threshold: Annotated[
        int | None, typer.Option(min=1, help="hide category × municipality cells under this count")
    ] = None,
) -> None:
    """Write every request, anonymised, as CSV: no names, numbers, references or words; dates
    to the day; rare category × municipality cells suppressed (CALLCENTER_SUPPRESSION_THRESHOLD
    by default). Audited."""
    from callcenter.audit import audit
    from callcenter.requests.open_data import export, to_csv

    async def main(settings: Settings) -> str:
        async def body(engine: AsyncEngine) -> str:
            cut = threshold or settings.suppression_threshold
            async with AsyncSession(engine) as session, session.begin():
                data = await export(await session.connection(), tz=ZoneInfo(settings.timezone), threshold=cut)
                output.write_text(to_csv(data), encoding="utf-8")
                audit(
                    session, actor="cli", action="requests.open_data.export", target=str(output)[:200],
                    rows=len(data.rows), suppressed=data.suppressed, threshold=cut,
                )  # fmt: skip
            hidden = f"{data.suppressed} with the municipality hidden"
            return f"{len(data.rows)} requests written to {output} ({hidden})"

        return await with_engine(settings, body)

    console.print(escape(domain(lambda: run(main))))


@open311_app.command("issue")
def open311_issue(
    name: Annotated[str, typer.Argument(help="the client, e.g. 'FixMyStreet Libya'")],
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option("--jurisdiction", "-j", help="a municipality code it may reach (repeat)"),
    ] = None,
) -> None:
    """Issue a key to an Open311 client (shown once; only its hash is kept). Audited."""
    from callcenter.open311.clients import issue

    async def body(engine: AsyncEngine) -> str:
        async with AsyncSession(engine) as session, session.begin():
            client, key = await issue(session, name=name, jurisdictions=jurisdiction or [], actor="cli")
        reach = ", ".join(sorted(client.jurisdictions)) or "every municipality"
        return f"{client.name} ({reach}): {key}\nGive it to the client now: it is not shown again."

    console.print(escape(domain(lambda: run(lambda s: with_engine(s, body)))))


@open311_app.command("list")
def open311_list() -> None:
    """The clients' keys: prefix, name, jurisdictions, last use, revoked."""
    from callcenter.open311.clients import clients

    async def body(engine: AsyncEngine) -> Table:
        async with engine.connect() as conn:
            found = await clients(conn)
        table = Table("prefix", "client", "jurisdictions", "last used", "revoked")
        for c in found:
            table.add_row(
                c.prefix, escape(c.name), escape(", ".join(sorted(c.jurisdictions)) or "all"),
                f"{c.last_used_at:%Y-%m-%d %H:%M}" if c.last_used_at else "",
                f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "",
            )  # fmt: skip
        return table

    console.print(domain(lambda: run(lambda s: with_engine(s, body))))


@open311_app.command("revoke")
def open311_revoke(prefix: Annotated[str, typer.Argument(help="the key's prefix, as listed")]) -> None:
    """Revoke a client's key (its requests stay). Audited."""
    from callcenter.open311.clients import revoke

    async def body(engine: AsyncEngine) -> str:
        async with AsyncSession(engine) as session, session.begin():
            client = await revoke(session, prefix=prefix, actor="cli")
        return f"revoked {client.prefix} ({client.name})"

    console.print(escape(domain(lambda: run(lambda s: with_engine(s, body)))))


def register(requests_app: typer.Typer) -> None:
    requests_app.command("export-open-data")(export_open_data)
    requests_app.add_typer(open311_app, name="open311")
