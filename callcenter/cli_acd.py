"""``callcenter acd``: the call routing's queues and agents from a YAML file, and a look at the
live state (agents by state, callers waiting) from the shared store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.cli_common import console, domain, run, with_engine
from callcenter.settings import Settings

acd_app = typer.Typer(help="Call routing: queues, agents and their phones and skills.", no_args_is_help=True)


@acd_app.command("load")
def acd_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML: queues and agents")],
) -> None:
    """Load queues (by key) and agents (by e-mail of an existing staff account) from YAML
    (see callcenter/samples/acd.yaml); the file is checked whole first. The telephony process
    picks the change up at its next start, or at once with ``callcenter acd show --reload``."""
    from callcenter.desk.setup import load

    text = file.read_text(encoding="utf-8")

    async def body(engine: AsyncEngine) -> str:
        loaded = await load(engine, text, actor="cli")
        return f"{loaded.queues} queues and {loaded.agents} agents loaded"

    console.print(escape(domain(lambda: run(lambda s: with_engine(s, body)))))


@acd_app.command("show")
def acd_show(
    reload: Annotated[bool, typer.Option(help="load queues and agents from the database first")] = False,
) -> None:
    """Agents and their states, and callers waiting per queue, as the router sees them now."""
    from callcenter.desk.acd import Acd
    from callcenter.redis_conn import connect

    async def body(settings: Settings, engine: AsyncEngine) -> Table:
        redis = connect(settings)
        try:
            acd = Acd(engine, redis)
            if reload:
                await acd.load()
            snap = await acd.store.snapshot()
        finally:
            await redis.aclose()
        table = Table("agent", "name", "state", "for", "queue")
        for record in sorted(snap.agents.values(), key=lambda r: r.id):
            table.add_row(
                record.id, escape(record.name), str(record.agent.state),
                f"{snap.now - record.agent.since:.0f} s", record.queue or "",
            )  # fmt: skip
        for queue in snap.queues:
            waiting = [w for w in snap.entries.values() if w.entry.queue == queue.queue.id]
            table.add_row("", f"queue {queue.queue.id}", f"{len(waiting)} waiting", "", "")
        return table

    async def main(settings: Settings) -> Table:
        return await with_engine(settings, lambda engine: body(settings, engine))

    console.print(domain(lambda: run(main)))
