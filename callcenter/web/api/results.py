"""The read-only results API for BI tools: an inquiry's shares, weighted and unweighted, with
their intervals, ``n_eff`` and ``deff``, optionally split by a dimension. A token needs the
``results:read`` scope; a municipality-scoped user's token reads their municipalities only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from callcenter.analysis import read
from callcenter.analysis.margins import VARIABLES
from callcenter.analysis.read import Scope
from callcenter.analysis.report import estimates_json
from callcenter.audit import audit
from callcenter.errors import NotFound
from callcenter.web.api.responses import API_ERRORS
from callcenter.web.deps import ReaderDep, SessionDep, SettingsDep
from callcenter.web.pages.common import CurrentActor, CurrentUser

router = APIRouter(prefix="/api/inquiries", tags=["results"], responses=API_ERRORS)


@router.get("/{ref}/estimates")
async def estimates(
    ref: str,
    user: CurrentUser,
    actor: CurrentActor,
    reader: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    weights: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies the default)
    by: str | None = None,
    municipality: str | None = None,
    language: str = "ar",
) -> dict[str, Any]:
    """Shares with 95 % intervals (Wilson; Kish-adjusted when weighted), small cells null."""
    async with reader.connect() as conn:
        definition = await read.load_inquiry(conn, ref)
        scope = Scope(user.municipalities)
        if municipality:
            found = await read.municipality_id(conn, municipality[:64])
            if found is None or not user.sees(found):
                raise NotFound("no such municipality")
            scope = Scope(frozenset({found}))
        weighting = await read.weigh(
            conn,
            definition,
            [w for w in weights if w in VARIABLES],
            scope=scope,
            trim_ratio=settings.weight_trim_ratio,
        )
        found_estimates = await read.estimates(
            conn,
            definition,
            weighting,
            scope=scope,
            by=read.check_dimension(definition, by),
            threshold=settings.suppression_threshold,
        )
    audit(session, actor=actor, action="results.read", target=definition.slug, via="api")
    return estimates_json(found_estimates, language="en" if language == "en" else "ar")
