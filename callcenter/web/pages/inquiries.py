"""``/inquiries``: list, create (YAML upload or form), detail with the citizen's preview, status.

Both ways of creating end in :class:`InquiryIn` (the YAML file through ``parse_inquiry_yaml``,
as ``callcenter inquiry load`` does; the form through the same model), so a rule checked for
one is checked for the other. Inquiries are national: no municipality scope applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.datastructures import UploadFile

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.errors import CallCenterError, Conflict, InvalidTransition, NotFound
from callcenter.inquiries import create_inquiry, load_definition, set_status
from callcenter.inquiry.definition import STATUS_MOVES, InquiryStatus, QuestionKind
from callcenter.inquiry.preview import preview_inquiry, prompt_keys, rendered_prompts
from callcenter.inquiry.schema import InquiryFileError, InquiryIn, parse_inquiry_yaml
from callcenter.messages import N_
from callcenter.settings import Settings
from callcenter.web.deps import ReadSessionDep, SessionDep, SettingsDep
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, now, redirect
from callcenter.web.policy import POLICIES
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
MAX_FILE_BYTES = 256 * 1024
#: question blocks on the form; a blank block is left out
FORM_QUESTIONS = 5
TRIPOLI = ZoneInfo("Africa/Tripoli")
#: the order the status buttons are offered in
MOVE_ORDER = (
    InquiryStatus.RUNNING,
    InquiryStatus.SCHEDULED,
    InquiryStatus.PAUSED,
    InquiryStatus.DRAFT,
    InquiryStatus.CLOSED,
)
_TEXT_FIELDS = ("title", "intro", "thanks")


@dataclass(frozen=True, slots=True)
class Problem:
    """One line of the error summary; ``field`` is the form field it points at, if any."""

    message: str
    field: str | None = None


def _allowed(principal: Principal, method: str, path: str) -> bool:
    policy = POLICIES.get((method, path))
    return policy is not None and policy.allows(principal.role)


def _title(row: models.Inquiry) -> str:
    return row.title_en if current_language.get() == "en" and row.title_en else row.title_ar


async def _by_slug(session: AsyncSession, slug: str) -> models.Inquiry:
    """By slug only (``get_inquiry_row`` reads an all-digit reference as an id)."""
    row = (
        await session.execute(select(models.Inquiry).where(col(models.Inquiry.slug) == slug[:100]))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(N_("There is no such inquiry."))
    return row


# -- the list -----------------------------------------------------------------------------------


@router.get("/inquiries")
async def list_page(
    request: Request, user: CurrentUser, session: ReadSessionDep, status: str = "", page: str = "1"
) -> Response:
    wanted = status if status in set(InquiryStatus) else ""
    number = max(1, int(page)) if page.isascii() and page.isdigit() and len(page) <= 9 else 1
    Inq, Q = models.Inquiry, models.Question
    filters = [col(Inq.status) == wanted] if wanted else []
    total = (await session.execute(select(func.count()).select_from(Inq).where(*filters))).scalar_one()
    pages = max(1, -(-total // PER_PAGE))
    number = min(number, pages)
    questions = (
        select(func.count())
        .select_from(Q)
        .where(col(Q.inquiry_id) == col(Inq.id))
        .correlate(Inq)
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(Inq, questions)
            .where(*filters)
            .order_by(col(Inq.id).desc())
            .offset((number - 1) * PER_PAGE)
            .limit(PER_PAGE)
        )
    ).all()

    def link(n: int) -> str:
        query = {"status": wanted, "page": n} if wanted else {"page": n}
        return f"/inquiries?{urlencode(query)}"

    return render(
        request,
        "inquiries/list.html",
        {
            "rows": [{"row": r, "title": _title(r), "questions": n} for r, n in rows],
            "total": total,
            "status": wanted,
            "statuses": list(InquiryStatus),
            "page": number,
            "pages": pages,
            "previous": link(number - 1) if number > 1 else None,
            "next": link(number + 1) if number < pages else None,
            "can_create": _allowed(user, "POST", "/inquiries"),
        },
    )


# -- creating -----------------------------------------------------------------------------------


def _blank_form() -> dict[str, str]:
    values = {name: "" for name in ("slug", "title_ar", "title_en", "intro_ar", "intro_en")}
    values |= {"thanks_ar": "", "thanks_en": "", "randomise_options": ""}
    for n in range(1, FORM_QUESTIONS + 1):
        values |= {f"q{n}_{part}": "" for part in ("key", "text_ar", "text_en", "options", "min", "max")}
        values[f"q{n}_kind"] = QuestionKind.CHOICE.value
    return values


def _new_page(
    request: Request,
    *,
    source: str = "form",
    values: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    status_code: int = 200,
) -> Response:
    problems = problems or []
    field_errors: dict[str, str] = {}
    for problem in problems:
        if problem.field and problem.field not in field_errors:
            field_errors[problem.field] = problem.message
    return render(
        request,
        "inquiries/new.html",
        {
            "source": source,
            "values": values or _blank_form(),
            "problems": problems,
            "field_errors": field_errors,
            "blocks": range(1, FORM_QUESTIONS + 1),
            "kinds": list(QuestionKind),
            "max_kb": MAX_FILE_BYTES // 1024,
        },
        status_code=status_code,
    )


@router.get("/inquiries/new")
async def new_page(request: Request, user: CurrentUser) -> Response:
    del user  # the guard has checked the role
    return _new_page(request)


def _options(text: str, number: int) -> tuple[list[dict[str, str]], list[Problem]]:
    """``value = ar label | en label``, one per line (the English label may be left out)."""
    options: list[dict[str, str]] = []
    problems: list[Problem] = []
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        value, equals, labels = line.partition("=")
        ar, _bar, en = labels.partition("|")
        if not equals or not value.strip() or not ar.strip():
            problems.append(
                Problem(
                    _(
                        "Question {number}, option line {line}: write value = Arabic label | English label."
                    ).format(number=number, line=line_number),
                    f"q{number}_options",
                )
            )
            continue
        options.append({"value": value.strip(), "ar": ar.strip(), "en": en.strip()})
    return options, problems


def _form_data(values: dict[str, str]) -> tuple[dict[str, Any], dict[int, int], list[Problem]]:
    """The form as the dict ``InquiryIn`` validates; also which block each question came from."""
    data: dict[str, Any] = {
        "slug": values["slug"],
        "title": {"ar": values["title_ar"], "en": values["title_en"]},
        "randomise_options": values.get("randomise_options") == "1",
    }
    for name in ("intro", "thanks"):
        if values[f"{name}_ar"] or values[f"{name}_en"]:
            data[name] = {"ar": values[f"{name}_ar"], "en": values[f"{name}_en"]}
    questions: list[dict[str, Any]] = []
    blocks: dict[int, int] = {}  # index in ``questions`` -> block number on the form
    problems: list[Problem] = []
    for n in range(1, FORM_QUESTIONS + 1):
        parts = {p: values[f"q{n}_{p}"] for p in ("key", "text_ar", "text_en", "options", "min", "max")}
        if not any(parts.values()):
            continue
        question: dict[str, Any] = {
            "key": parts["key"],
            "kind": values[f"q{n}_kind"],
            "text": {"ar": parts["text_ar"], "en": parts["text_en"]},
        }
        if parts["options"]:
            question["options"], wrong = _options(parts["options"], n)
            problems += wrong
        for bound in ("min", "max"):
            if parts[bound]:
                question[bound] = parts[bound]
        blocks[len(questions)] = n
        questions.append(question)
    data["questions"] = questions
    return data, blocks, problems


_FIELD_LABELS = {
    "slug": N_("Short name (slug)"),
    "title_ar": N_("Title in Arabic"),
    "title_en": N_("Title in English"),
    "intro_ar": N_("Introduction in Arabic"),
    "intro_en": N_("Introduction in English"),
    "thanks_ar": N_("Thanks in Arabic"),
    "thanks_en": N_("Thanks in English"),
    "key": N_("Key"),
    "kind": N_("Kind"),
    "text_ar": N_("Question in Arabic"),
    "text_en": N_("Question in English"),
    "options": N_("Options"),
    "min": N_("Lowest answer"),
    "max": N_("Highest answer"),
}


def _field_of(loc: tuple[int | str, ...], blocks: dict[int, int]) -> tuple[str | None, str]:
    """The form field a schema error is about, and its label for the summary."""
    head = loc[0] if loc else None
    if head == "slug":
        return "slug", _(_FIELD_LABELS["slug"])
    if head in _TEXT_FIELDS:
        language = loc[1] if len(loc) > 1 and loc[1] in ("ar", "en") else "ar"
        name = f"{head}_{language}"
        return name, _(_FIELD_LABELS[name])
    if head == "questions":
        if len(loc) < 2 or not isinstance(loc[1], int):
            return "q1_key", _("Questions")
        n = blocks.get(loc[1], loc[1] + 1)
        part = str(loc[2]) if len(loc) > 2 else "key"
        if part == "text":
            part = "text_en" if len(loc) > 3 and loc[3] == "en" else "text_ar"
        if part not in _FIELD_LABELS:
            part = "key"
        label = _("Question {number}").format(number=n) + " — " + _(_FIELD_LABELS[part])
        return f"q{n}_{part}", label
    return None, ""


def _message(error: Any) -> str:
    """The schema's complaint in the reader's language where it is a common one; the rules
    of the definition itself (skip targets, options only for choices) stay as written."""
    kind, ctx = error["type"], error.get("ctx") or {}
    last = error["loc"][-1] if error["loc"] else ""
    if kind == "string_pattern_mismatch":
        if last == "slug":
            return _("Use lowercase Latin letters, digits and hyphens, starting with a letter or a digit.")
        return _("Use lowercase Latin letters, digits and underscores, starting with a letter.")
    if kind in ("missing", "string_too_short"):
        return _("This is required.")
    if kind == "string_too_long":
        return _("At most {limit} characters.").format(limit=ctx.get("max_length", ""))
    if kind == "enum":
        return _("Choose one of: {choices}.").format(choices=ctx.get("expected", ""))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return _("Enter a whole number.")
    if kind == "too_short" and last == "questions":
        return _("Write at least one question.")
    if kind == "too_long" and last == "questions":
        return _("At most {limit} questions.").format(limit=ctx.get("max_length", ""))
    if kind == "extra_forbidden":
        return _("This is not a field of an inquiry.")
    return str(error["msg"]).removeprefix("Value error, ")


def _schema_problems(exc: ValidationError, blocks: dict[int, int] | None = None) -> list[Problem]:
    """Form errors point at the form's fields; file errors name the path in the file."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if blocks is None:
            path = ".".join(str(p) for p in loc)
            problems.append(Problem(f"{path}: {_message(error)}" if path else _message(error)))
        else:
            field, label = _field_of(loc, blocks)
            problems.append(Problem(f"{label}: {_message(error)}" if label else _message(error), field))
    return problems


def _file_problems(exc: InquiryFileError) -> list[Problem]:
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        return _schema_problems(cause)
    if isinstance(cause, yaml.MarkedYAMLError) and cause.problem_mark is not None:
        mark = cause.problem_mark
        return [
            Problem(
                _("The file is not valid YAML: line {line}, column {column}: {problem}").format(
                    line=mark.line + 1, column=mark.column + 1, problem=cause.problem or ""
                )
            )
        ]
    if isinstance(cause, yaml.YAMLError):
        return [Problem(_("The file is not valid YAML: {problem}").format(problem=cause))]
    return [Problem(_("The file must describe an inquiry: slug, title and questions."))]


async def _read_upload(request: Request) -> tuple[InquiryIn | None, list[Problem], int]:
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None, [Problem(_("Choose a YAML file to upload."), "file")], 400
    raw = await upload.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        message = _("The file is larger than {size} KB.").format(size=MAX_FILE_BYTES // 1024)
        return None, [Problem(message, "file")], 413
    if not raw.strip():
        return None, [Problem(_("The file is empty."), "file")], 400
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, [Problem(_("The file is not UTF-8 text. Save it as UTF-8 and try again."), "file")], 400
    try:
        return parse_inquiry_yaml(text, source=upload.filename[:200]), [], 200
    except InquiryFileError as exc:
        return None, _file_problems(exc), 400


async def _read_form(request: Request) -> tuple[InquiryIn | None, dict[str, str], list[Problem]]:
    values: dict[str, str] = {}
    for name in _blank_form():
        limit = 20_000 if name.endswith("_options") else 2000
        values[name] = (await form_text(request, name, limit=limit)).strip()
    data, blocks, problems = _form_data(values)
    try:
        parsed = InquiryIn.model_validate(data)
    except ValidationError as exc:
        problems += _schema_problems(exc, blocks)
        order = {name: i for i, name in enumerate(values)}
        problems.sort(key=lambda p: order.get(p.field or "", -1))
        return None, values, problems
    return (None if problems else parsed), values, problems


@router.post("/inquiries")
async def create(request: Request, session: SessionDep, actor: CurrentActor) -> Response:
    source = "file" if await form_text(request, "source", limit=10) == "file" else "form"
    values: dict[str, str] | None = None
    if source == "file":
        data, problems, status_code = await _read_upload(request)
    else:
        data, values, problems = await _read_form(request)
        status_code = 400
    if data is None or problems:
        return _new_page(request, source=source, values=values, problems=problems, status_code=status_code)
    try:
        async with session.begin_nested():
            await create_inquiry(session, data, actor=actor)
    except Conflict:
        problem = Problem(
            _("An inquiry with the short name {slug} already exists.").format(slug=data.slug),
            "slug" if source == "form" else "file",
        )
        return _new_page(request, source=source, values=values, problems=[problem], status_code=409)
    return redirect(f"/inquiries/{data.slug}?done=created")


# -- the detail ---------------------------------------------------------------------------------


def _moves(current: InquiryStatus) -> list[InquiryStatus]:
    return [s for s in MOVE_ORDER if s in STATUS_MOVES[current]]


async def _detail(
    request: Request,
    session: AsyncSession,
    user: Principal,
    slug: str,
    settings: Settings,
    *,
    error: str | None = None,
    notice: str | None = None,
    at: str = "",
    status_code: int = 200,
) -> Response:
    row = await _by_slug(session, slug)
    assert row.id is not None
    definition = await load_definition(session, row.id)
    rendered = rendered_prompts(settings.prompts_dir, prompt_keys(definition))
    current = InquiryStatus(row.status)
    return render(
        request,
        "inquiries/detail.html",
        {
            "row": row,
            "title": _title(row),
            "definition": definition,
            "preview": preview_inquiry(definition, rendered=rendered),
            "moves": _moves(current) if _allowed(user, "POST", "/inquiries/{slug}/status") else [],
            "can_listen": _allowed(user, "GET", "/prompts/audio/{language}/{prompt_id}"),
            "error": error,
            "notice": notice,
            "at": at,
        },
        status_code=status_code,
    )


_DONE = {
    "created": N_("The inquiry has been created as a draft."),
    "status": N_("The status has been changed."),
}


@router.get("/inquiries/{slug}")
async def detail_page(
    request: Request,
    slug: str,
    user: CurrentUser,
    session: ReadSessionDep,
    settings: SettingsDep,
    done: str = "",
) -> Response:
    notice = _(_DONE[done]) if done in _DONE else None
    return await _detail(request, session, user, slug, settings, notice=notice)


STATUS_LABELS = {
    InquiryStatus.DRAFT: N_("Draft"),
    InquiryStatus.SCHEDULED: N_("Scheduled"),
    InquiryStatus.RUNNING: N_("Running"),
    InquiryStatus.PAUSED: N_("Paused"),
    InquiryStatus.CLOSED: N_("Closed"),
}


def _start_time(text: str) -> datetime | None:
    """A ``datetime-local`` value read as Tripoli time (an explicit offset is kept), in UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
        return (value if value.tzinfo else value.replace(tzinfo=TRIPOLI)).astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or year 1 moved before the calendar
        return None


@router.post("/inquiries/{slug}/status")
async def change_status(
    request: Request,
    slug: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    row = await _by_slug(session, slug)
    assert row.id is not None
    current = InquiryStatus(row.status)  # read now: a refused move expires the row
    given = await form_text(request, "status", limit=20)
    at_text = await form_text(request, "at", limit=40)

    async def problem(message: str, status_code: int = 400) -> Response:
        return await _detail(
            request, session, user, slug, settings, error=message, at=at_text, status_code=status_code
        )

    if given not in set(InquiryStatus):
        return await problem(_("Choose one of the statuses offered."))
    wanted = InquiryStatus(given)
    at: datetime | None = None
    if wanted is InquiryStatus.SCHEDULED:
        at = _start_time(at_text)
        if at is None:
            return await problem(_("Give the start time as a date and a time, for example 2025-03-01 09:00."))
        if at <= now():
            return await problem(_("The start time must be in the future."))
    try:
        async with session.begin_nested():  # nothing half-done stays when the move is refused
            await set_status(session, row.id, wanted, actor=actor, at=at)
    except InvalidTransition:
        message = _("An inquiry that is “{current}” cannot become “{wanted}”.").format(
            current=_(STATUS_LABELS[current]), wanted=_(STATUS_LABELS[wanted])
        )
        return await problem(message, 409)
    except CallCenterError as exc:
        return await problem(_(exc.message))
    return redirect(f"/inquiries/{slug}?done=status")
