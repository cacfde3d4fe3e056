"""Errors mapped to answers once: JSON for the API (``error``, ``message``, ``details``),
pages for a browser (login redirect, the second-factor step, 403, 404, 413)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from callcenter.errors import CallCenterError
from callcenter.web.guard import CsrfFailed, Forbidden, NotAuthenticated, StepRequired, is_api
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import redirect
from callcenter.web.security import BodyTooLarge
from callcenter.web.templating import render


def _wants_page(request: Request) -> bool:
    return not is_api(request) and not request.url.path.startswith(("/sms/", "/health", "/openapi"))


def _page(request: Request, status: int, heading: str, message: str, error_id: str = "") -> Response:
    headers = {"X-Error-Id": error_id} if error_id else None
    return render(
        request,
        "errors/error.html",
        {"heading": heading, "message": message},
        status_code=status,
        headers=headers,
    )


def install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(CallCenterError)
    async def _domain_error(request: Request, exc: CallCenterError) -> Response:
        if not _wants_page(request):
            status = 401 if isinstance(exc, NotAuthenticated) else exc.status_code
            if isinstance(exc, StepRequired):
                status = 401
            return JSONResponse(
                {"error": exc.error_id, "message": exc.message, "details": exc.details},
                status_code=status,
                headers={"X-Error-Id": exc.error_id},
            )
        if isinstance(exc, NotAuthenticated):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"/login?next={quote(target, safe='/')}")
        if isinstance(exc, StepRequired):
            return redirect("/login/totp" if exc.stage == "mfa" else "/account/totp")
        if isinstance(exc, CsrfFailed):
            return _page(
                request,
                403,
                _("This form has expired"),
                _("The form was open too long or came from elsewhere. Reload the page and try again."),
                exc.error_id,
            )
        if isinstance(exc, Forbidden):
            return _page(
                request,
                403,
                _("You cannot see this page"),
                _("Your role does not give access to it."),
                exc.error_id,
            )
        if exc.status_code == 404:
            return _page(request, 404, _("Page not found"), _(exc.message))
        return _page(request, exc.status_code, _("Something is not right"), _(exc.message))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _wants_page(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 404:
            return _page(
                request, 404, _("Page not found"), _("Check the address, or start from your home page.")
            )
        return _page(request, exc.status_code, _("Something is not right"), str(exc.detail))

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        if not _wants_page(request):
            return JSONResponse(
                {"error": "too_large", "message": "the request body is too large"}, status_code=413
            )
        return _page(request, 413, _("The file is too large"), _("Choose a smaller file."))
