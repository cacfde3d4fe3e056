"""``callcenter requests``: the service catalogue (categories, responsible bodies, overrides)
from a YAML file, a look at it, and a recompute of the open requests' SLA clocks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.cli_common import console, domain, run, with_engine
from callcenter.settings import Settings

requests_app = typer.Typer(
    help="Service requests: the catalogue of categories and responsible bodies, SLA clocks.",
    no_args_is_help=True,
)


@requests_app.command("load")
def requests_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML: bodies and categories")],
) -> None:
    """Load responsible bodies and categories (by key) from YAML (see
    callcenter/samples/requests.yaml); the file is checked whole first, against the
    municipalities register too, and nothing is written when anything is wrong."""
    from callcenter.requests.store import load

    text = file.read_text(encoding="utf-8")

    async def body(engine: AsyncEngine) -> str:
        loaded = await load(engine, text, actor="cli")
        return (
            f"{loaded.bodies} bodies, {loaded.categories} categories and {loaded.overrides} overrides loaded"
        )

    console.print(escape(domain(lambda: run(lambda s: with_engine(s, body)))))


@requests_app.command("show")
def requests_show() -> None:
    """The categories as the IVR offers them: keypad code, names, SLA targets (working hours),
    the default body and the municipalities that send them elsewhere."""
    from callcenter.requests.store import read_catalogue

    async def body(engine: AsyncEngine) -> Table:
        async with engine.connect() as conn:
            catalogue = await read_catalogue(conn)
        table = Table("key", "category", "name", "first response / resolution (h)", "body", "overrides")
        for cat in catalogue.categories.values():
            overrides = ", ".join(f"{code}: {other}" for code, other in sorted(cat.overrides.items()))
            table.add_row(
                cat.keypad, cat.key, escape(f"{cat.name_ar} / {cat.name_en}"),
                f"{cat.targets.first_response_h:g} / {cat.targets.resolution_h:g}", cat.body,
                escape(overrides),
            )  # fmt: skip
        return table

    console.print(domain(lambda: run(lambda s: with_engine(s, body))))


@requests_app.command("recompute")
def requests_recompute(
    day: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="only the requests whose clocks span this day (just corrected in the holiday calendar)",
        ),
    ] = None,
) -> None:
    """Recompute every open request's SLA due dates and state (after a change of the calendar
    or the targets), or with --day only those a correction of that day can move."""
    from callcenter.requests.recompute import recompute_sla
    from callcenter.requests.store import load_calendar

    async def main(settings: Settings) -> str:
        async def body(engine: AsyncEngine) -> str:
            calendar = await load_calendar(engine, settings)
            done = await recompute_sla(
                engine, calendar, due_soon_share=settings.request_due_soon_share,
                day=day.date() if day is not None else None,
            )  # fmt: skip
            spanning = f" spanning {day.date().isoformat()}" if day is not None else ""
            return (
                f"{done.open} open requests{spanning}, {done.changed} changed, "
                f"{len(done.newly_breached)} newly breached ({done.seconds:.1f} s)"
            )

        return await with_engine(settings, body)

    console.print(domain(lambda: run(main)))


# the open-data export and the Open311 client keys (callcenter/cli_open311.py)
from callcenter.cli_open311 import register as _register_open311  # noqa: E402

_register_open311(requests_app)
