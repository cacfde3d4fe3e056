"""The changes an officer or the ministry makes on a request's page: assign it to a colleague,
change its status (or add a note) public or internal, mark it as a duplicate of another
(found by its reference, the check digit verified first), refuse it as not responsible
(back to the ministry), and re-route a refused one (the ministry).

Every form carries the request's ``version``: a change made against an older one is refused
(``service.StaleRequest``) and the page comes back, 409, with the request as it now is, the
other person's change in its history, and what this officer typed still in the form;
nothing is overwritten. A public change is told to the citizen by SMS once committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.accounts.principal import Principal
from callcenter.errors import CallCenterError
from callcenter.messages import N_
from callcenter.requests import lifecycle, service
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.notify import notify_change
from callcenter.requests.queue_read import RequestPage
from callcenter.requests.read import RequestView
from callcenter.requests.reference import BadReference, parse
from callcenter.requests.store import load_calendar
from callcenter.settings import Settings
from callcenter.web.deps import EngineDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.pages.requests import MINISTRY, detail_context, say_reference, visible
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

Run = Callable[[WorkingCalendar, int], Awaitable[RequestView]]

CONFLICT: Final = N_(
    "Someone else changed this request while you were looking at it. Nothing you typed was saved: "
    "here is the request as it is now, with their change in its history. Check it, then try again."
)
ERRORS: Final = {
    "invalid_transition": N_("This change is not possible from the request's present status."),
    "not_allowed": N_("Your role cannot make this change."),
    "note_required": N_("Write a note saying why."),
    "reopen_too_late": N_("The request was resolved too long ago to reopen: make a new one."),
    "not_found": N_("No request has this reference."),
}
BAD_FIELD: Final = {
    "note": N_("A note has at most 2,000 characters."),
    "user": N_("Choose an active colleague from the list."),
    "body": N_("Choose a responsible body from the list."),
    "original": N_("A request cannot be a duplicate of itself."),
}
NOTE_CHARS: Final = service.NOTE_LIMIT + 1


def _say(exc: CallCenterError) -> str:
    if isinstance(exc, BadReference):
        return say_reference(exc)
    if isinstance(exc, service.BadIntake):
        return _(BAD_FIELD.get(str(exc.details.get("field")), N_("This change could not be made.")))
    return _(ERRORS.get(exc.error_id, N_("This change could not be made.")))


class Acting:
    """One change on one request: the form's values, and the answer (a redirect, or the page
    again with the error under the form)."""

    def __init__(
        self,
        request: Request,
        *,
        user: Principal,
        session: AsyncSession,
        engine: AsyncEngine,
        settings: Settings,
        found: RequestPage,
        form: str,
    ) -> None:
        self.request, self.user, self.session = request, user, session
        self.engine, self.settings, self.found, self.form = engine, settings, found, form
        self.typed: dict[str, str] = {"form": form}

    @property
    def role(self) -> str:
        return self.user.role.value

    async def field(self, name: str, limit: int = 200) -> str:
        self.typed[name] = value = (await form_text(self.request, name, limit=limit)).strip()
        return value

    async def again(self, message: str, status_code: int, *, conflict: bool = False) -> Response:
        """The page as it is now, the form's error and values kept."""
        await self.session.rollback()
        fresh = await visible(self.session, self.user, self.found.request.reference)
        context = await detail_context(
            self.session, self.user, fresh, self.settings, errors={self.form: message}, typed=self.typed,
            conflict=conflict,
        )  # fmt: skip
        return render(self.request, "requests/detail.html", context, status_code=status_code)

    async def run(
        self, change: Run, *, done: str, redis: Redis | None = None, note: str | None = None
    ) -> Response:
        """Make the change against the form's version; text the citizen (``note``: the
        public note, '' for none) once it is committed."""
        version = await self.field("version", 12)
        if not version.isdigit():
            return await self.again(_("The form is incomplete: reload the page."), 400)
        try:
            view = await change(await load_calendar(self.engine, self.settings), int(version))
        except service.StaleRequest:
            return await self.again(_(CONFLICT), 409, conflict=True)
        except CallCenterError as exc:
            return await self.again(_say(exc), exc.status_code if 400 <= exc.status_code < 500 else 400)
        target = f"/requests/{view.reference}?done={done}"
        if note is not None and redis is not None:
            await self.session.commit()  # the citizen never hears of a change rolled back
            sent = await notify_change(
                self.settings, self.engine, redis, request_id=view.id, version=view.version, note=note
            )
            target += "&sms=1" if sent else ""
        return redirect(target)


async def _acting(
    request: Request, reference: str, user: Principal, session: AsyncSession, engine: AsyncEngine,
    settings: Settings, form: str,
) -> Acting:  # fmt: skip
    found = await visible(session, user, reference)
    return Acting(
        request, user=user, session=session, engine=engine, settings=settings, found=found, form=form
    )


@router.post("/requests/{reference}/status")
async def change_status(
    request: Request, reference: str, user: CurrentUser, actor: CurrentActor, session: SessionDep,
    engine: EngineDep, settings: SettingsDep, redis: RedisDep,
) -> Response:  # fmt: skip
    """A new status with a note, or a note alone; public ones reach the citizen by SMS."""
    act = await _acting(request, reference, user, session, engine, settings, "status")
    to = await act.field("to", 20)
    note = await act.field("note", NOTE_CHARS)
    public = await act.field("public", 1) == "1"
    request_id = act.found.request.id
    if to and to not in {str(s) for s in lifecycle.Status}:
        return await act.again(_("Choose a status from the list."), 422)
    if not to and not note:
        return await act.again(_("Choose a new status or write a note."), 422)
    if not to:

        async def noted(_cal: WorkingCalendar, version: int) -> RequestView:
            return await service.add_note(
                session,
                request_id,
                note=note,
                public=public,
                expected_version=version,
                actor=actor,
                role=act.role,
            )

        return await act.run(noted, done="note", redis=redis, note=note if public else None)
    told = public and lifecycle.Status(to) in lifecycle.PUBLIC

    async def moved(cal: WorkingCalendar, version: int) -> RequestView:
        return await service.change_status(
            session, request_id, to, expected_version=version, actor=actor, role=act.role, calendar=cal,
            settings=settings, note=note, public_note=told,
        )  # fmt: skip

    return await act.run(moved, done="status", redis=redis, note=note if told else None)


@router.post("/requests/{reference}/assign")
async def assign(
    request: Request, reference: str, user: CurrentUser, actor: CurrentActor, session: SessionDep,
    engine: EngineDep, settings: SettingsDep,
) -> Response:  # fmt: skip
    act = await _acting(request, reference, user, session, engine, settings, "assign")
    chosen = await act.field("user", 20)
    if chosen and not chosen.isdigit():
        return await act.again(_(BAD_FIELD["user"]), 422)

    async def given(_cal: WorkingCalendar, version: int) -> RequestView:
        return await service.assign(
            session, act.found.request.id, user_id=int(chosen) if chosen else None, expected_version=version,
            actor=actor, role=act.role,
        )  # fmt: skip

    return await act.run(given, done="assigned")


@router.post("/requests/{reference}/duplicate")
async def duplicate(
    request: Request, reference: str, user: CurrentUser, actor: CurrentActor, session: SessionDep,
    engine: EngineDep, settings: SettingsDep, redis: RedisDep,
) -> Response:  # fmt: skip
    """Mark as a duplicate of the request of the reference typed (checked before any lookup);
    the original's public updates then reach this reporter."""
    act = await _acting(request, reference, user, session, engine, settings, "duplicate")
    original = await act.field("original", 40)
    note = await act.field("note", NOTE_CHARS)
    try:
        parsed = parse(original)
    except BadReference as exc:
        return await act.again(say_reference(exc), 422)

    async def marked(cal: WorkingCalendar, version: int) -> RequestView:
        return await service.mark_duplicate(
            session, act.found.request.id, original=parsed.display, expected_version=version, actor=actor,
            role=act.role, calendar=cal, settings=settings, note=note,
        )  # fmt: skip

    return await act.run(marked, done="duplicate", redis=redis, note="")


@router.post("/requests/{reference}/refuse")
async def refuse(
    request: Request, reference: str, user: CurrentUser, actor: CurrentActor, session: SessionDep,
    engine: EngineDep, settings: SettingsDep,
) -> Response:  # fmt: skip
    """Not this body's: back to the ministry, which routes it again (internal, counted)."""
    act = await _acting(request, reference, user, session, engine, settings, "refuse")
    note = await act.field("note", NOTE_CHARS)

    async def refused(cal: WorkingCalendar, version: int) -> RequestView:
        return await service.refuse(
            session, act.found.request.id, expected_version=version, actor=actor, role=act.role, note=note,
            calendar=cal, settings=settings,
        )  # fmt: skip

    return await act.run(refused, done="refused")


@router.post("/requests/{reference}/reroute")
async def reroute(
    request: Request, reference: str, user: CurrentUser, actor: CurrentActor, session: SessionDep,
    engine: EngineDep, settings: SettingsDep,
) -> Response:  # fmt: skip
    """The ministry sends a refused request to another body."""
    if user.role not in MINISTRY:
        raise Forbidden("re-routing is the ministry's")
    act = await _acting(request, reference, user, session, engine, settings, "reroute")
    body = await act.field("body", 48)
    note = await act.field("note", NOTE_CHARS)

    async def rerouted(cal: WorkingCalendar, version: int) -> RequestView:
        return await service.reroute(
            session, act.found.request.id, body=body, expected_version=version, actor=actor, role=act.role,
            calendar=cal, settings=settings, note=note,
        )  # fmt: skip

    return await act.run(rerouted, done="rerouted")
