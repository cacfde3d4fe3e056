"""``/admin/margins``: the population tables that weighting uses. Admins upload a CSV (one
table per file: a margin over one attribute or a full cross over several) and delete
tables; each change is audited. Analysts see the margins used beside every weighted result."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from callcenter.analysis.margin_store import delete_table, listing, load_file
from callcenter.analysis.margins import MAX_BYTES, MarginFileError, Problem, decode
from callcenter.messages import N_
from callcenter.web.deps import SessionDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.pages.results_view import VARIABLE_NAMES
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

_NOTICES = {
    "loaded": N_("The table is loaded: weighted results use it from now on."),
    "deleted": N_("The table is deleted."),
}


def _names(variables: tuple[str, ...]) -> str:
    return ", ".join(_(VARIABLE_NAMES.get(v, v)) for v in variables)


async def _page(
    request: Request,
    session: SessionDep,
    *,
    problems: Sequence[Problem] = (),
    notice: str | None = None,
    status: int = 200,
) -> Response:
    tables = [{"table": t, "names": _names(t.variables)} for t in await listing(session)]
    return render(
        request,
        "admin/margins.html",
        {
            "tables": tables,
            "errors": [(p.line, p.text(_)) for p in problems],
            "notice": _(notice) if notice else None,
        },
        status_code=status,
    )


@router.get("/admin/margins")
async def margins(request: Request, session: SessionDep, done: str | None = None) -> Response:
    return await _page(request, session, notice=_NOTICES.get(done or ""))


@router.post("/admin/margins")
async def upload(request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep) -> Response:
    if user.scoped:
        raise Forbidden("population margins are national: loading them needs access to every municipality")
    file = (await request.form()).get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return await _page(
            request, session, problems=[Problem(N_("Choose a CSV file to upload."))], status=400
        )
    data = await file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        problems = [Problem(N_("The file is larger than 2 MB: a table of margins is far smaller."))]
        return await _page(request, session, problems=problems, status=413)
    try:
        await load_file(session, decode(data), source=file.filename, actor=actor)
    except MarginFileError as exc:
        return await _page(request, session, problems=exc.problems, status=400)
    return redirect("/admin/margins?done=loaded")


@router.post("/admin/margins/delete")
async def delete(request: Request, user: CurrentUser, actor: CurrentActor, session: SessionDep) -> Response:
    if user.scoped:
        raise Forbidden("population margins are national")
    key = await form_text(request, "table", limit=200)
    await delete_table(session, key, actor=actor)
    return redirect("/admin/margins?done=deleted")
