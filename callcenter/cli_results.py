"""``callcenter results --weighted`` and ``callcenter export --format``: the analysts'
workspace from the command line (the same read model, weights and suppression as /results)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.analysis import exports, read
from callcenter.analysis.export_jobs import ExportRequest, write_export
from callcenter.analysis.read import Scope
from callcenter.analysis.report import estimates_json, order_effects_json
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
        order = await read.order_effects(conn, inquiry, scope=scope, threshold=settings.suppression_threshold)
    return estimates_json(found, language=language) | {
        "order_effects": order_effects_json(order, language=language)
    }


async def order_effects(
    engine: AsyncEngine, settings: Settings, slug: str, *, municipality: str | None, language: str
) -> list[dict[str, Any]]:
    """The order effects of an inquiry whose options are randomised (empty otherwise)."""
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, slug)
        scope = await _scope(conn, municipality)
        found = await read.order_effects(conn, inquiry, scope=scope, threshold=settings.suppression_threshold)
    return order_effects_json(found, language=language)


def print_order_effects(effects: list[dict[str, Any]]) -> None:
    """Each option's share when listed first and when not, and the plain-words flag."""
    words = {
        "first": "chosen more when listed first",
        "later": "chosen less when listed first",
        "none": "no clear order effect",
        "insufficient": "hidden: too few answers",
    }

    def pct(p: dict[str, float | None]) -> str:
        share, low, high = p["share"], p["low"], p["high"]
        if share is None:
            return "—"
        return f"{share:.1%}" + ("" if low is None or high is None else f" ({low:.1%}–{high:.1%})")

    for q in effects:
        table = Table(title=f"order effects — {q['key']}: {q['text']} ({q['answers']} answers)")
        for column in ("answer", "listed first", "listed elsewhere", "gap (points)", "reading"):
            table.add_column(column, justify="left" if column in ("answer", "reading") else "right")
        for o in q["options"]:
            gap = o["gap"]
            points = "—" if gap is None or gap["estimate"] is None else f"{gap['estimate'] * 100:+.1f}"
            if gap is not None and gap["low"] is not None:
                points += f" ({gap['low'] * 100:+.1f} to {gap['high'] * 100:+.1f})"
            table.add_row(o["label"], pct(o["first"]), pct(o["later"]), points, words[o["flag"]])
        console.print(table)


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
    print_order_effects(data.get("order_effects", []))


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
    wanted = ExportRequest(
        inquiry.slug, fmt, weighted, tuple(weights), shares, tuple(sorted(scope.municipalities)), language, 0
    )
    try:
        written = await write_export(engine, settings, wanted, output)
    except exports.ExportError as exc:  # the weighting's own words: "no population margin for ..."
        raise ValueError(exc.details.get("reason") or exc.message) from exc
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        audit(
            session,
            actor="cli",
            action="results.export",
            target=inquiry.slug,
            format=fmt,
            weighted=weighted,
            weights=list(weights) if weighted else [],
            rows=written,
        )
    return written
