"""``callcenter results --weighted`` and ``callcenter export --format``: the analysts'
workspace from the command line (the same read model, weights and suppression as /results)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.analysis import exports, read
from callcenter.analysis.read import Scope
from callcenter.analysis.report import estimates_json
from callcenter.audit import audit
from callcenter.cli_common import console
from callcenter.settings import Settings


async def _scope(conn: Any, municipality: str | None) -> Scope:
    if not municipality:
        return Scope()
    found = await read.municipality_id(conn, municipality)
    if found is None:
        raise ValueError(f"no municipality {municipality!r}")
    return Scope(frozenset({found}))


async def weighted_results(
    engine: AsyncEngine,
    settings: Settings,
    slug: str,
    *,
    weights: Sequence[str],
    shares: bool,
    municipality: str | None,
    language: str,
) -> dict[str, Any]:
    """Per question ``n``, ``n_eff`` and ``deff``; per answer the weighted ``share``, ``low``
    and ``high`` with the unweighted ones beside them (hidden cells are null)."""
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, slug)
        scope = await _scope(conn, municipality)
        weighting = await read.weigh(
            conn, inquiry, weights, scope=scope, trim_ratio=settings.weight_trim_ratio, normalise=shares
        )
        if weighting.error is not None:
            raise weighting.error
        if not weighting.active:
            raise ValueError("no weighting variables: pass --weights municipality (district, language)")
        found = await read.estimates(
            conn, inquiry, weighting, scope=scope, threshold=settings.suppression_threshold
        )
    return estimates_json(found, language=language)


def print_weighted(data: dict[str, Any]) -> None:
    report = data["weighting"]
    console.print(
        f"[bold]{data['inquiry']}[/bold] — {report['method']} on {', '.join(report['variables'])}: "
        f"n {report['n']}, n_eff {report['n_eff']:.1f}, deff {report['deff']:.3f}, "
        f"{'converged' if report['converged'] else 'NOT converged'} in {report['iterations']} sweeps"
    )

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    for q in data["questions"]:
        n = "—" if q["n"] is None else q["n"]
        table = Table(title=f"{q['key']}: {q['text']} (n={n}, n_eff={q['n_eff']:.1f}, deff={q['deff']:.2f})")
        for column in ("answer", "count", "share", "95% CI", "weighted", "95% CI (weighted)"):
            table.add_column(column, justify="left" if column == "answer" else "right")
        for a in q["answers"]:
            u = a["unweighted"]
            table.add_row(
                a["label"],
                "—" if a["count"] is None else str(a["count"]),
                pct(u["share"]),
                f"{pct(u['low'])}–{pct(u['high'])}",
                pct(a["share"]),
                f"{pct(a['low'])}–{pct(a['high'])}",
            )
        console.print(table)


async def export_file(
    engine: AsyncEngine,
    settings: Settings,
    slug: str,
    *,
    fmt: exports.Format,
    output: Path,
    weighted: bool,
    weights: Sequence[str],
    shares: bool,
    municipality: str | None,
    language: str,
) -> int:
    """Write the respondents of ``slug`` to ``output`` in ``fmt``; audited as the CLI."""
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, slug)
        scope = await _scope(conn, municipality)
        weighting = read.Weighting()
        if weighted:
            weighting = await read.weigh(
                conn, inquiry, weights, scope=scope, trim_ratio=settings.weight_trim_ratio, normalise=shares
            )
            if weighting.error is not None:
                raise weighting.error
            if not weighting.active:
                raise ValueError("no weighting variables: pass --weights municipality (district, language)")
        estimates = None
        if fmt == "xlsx":
            estimates = await read.estimates(
                conn, inquiry, weighting, scope=scope, threshold=settings.suppression_threshold
            )
        columns = exports.layout(inquiry, weighted=weighted, language=language)
        rows = exports.respondents(
            conn,
            inquiry,
            columns,
            scope=scope,
            weighting=weighting,
            key=settings.pseudonym_key,
            coded=fmt in ("sav", "dta"),
        )
        written = await exports.write_file(
            fmt, output, inquiry, columns, rows, language=language, estimates=estimates
        )
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        audit(
            session,
            actor="cli",
            action="results.export",
            target=inquiry.slug,
            format=fmt,
            weighted=weighted,
            weights=list(weighting.variables),
            rows=written,
        )
    return written
