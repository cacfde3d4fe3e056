"""The refusals the JSON API gives, declared once for the OpenAPI schema.

Every ``/api`` router lists them (``APIRouter(responses=API_ERRORS)``), so the schema says
what a client can really get back: the engine's errors (``web.errors`` turns each
``CallCenterError`` into ``{"error", "message", "details"}``), the guard's 401 and 403, the
body limit's 413; for 400 also the framework's ``{"detail": "..."}`` (a body that is not JSON),
and for 422 also FastAPI's ``{"detail": [...]}`` (a parameter or body that does not fit its
declared type).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """A refusal: ``error`` is a stable id to branch on, ``message`` says why in words."""

    error: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class HttpErrorOut(BaseModel):
    """The framework's own refusals: a body that is not JSON (400), a wrong method (405)."""

    detail: str


class ValidationOut(BaseModel):
    """FastAPI's 422: one entry per field or parameter that does not fit (``loc``, ``msg``)."""

    detail: list[dict[str, Any]]


API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut | HttpErrorOut,
        "description": "The request cannot be carried out, or its body cannot be parsed",
    },
    401: {"model": ErrorOut, "description": "No valid bearer token (or session)"},
    403: {"model": ErrorOut, "description": "The token's role, scope or municipalities do not allow it"},
    404: {"model": ErrorOut, "description": "No such inquiry, campaign or municipality"},
    409: {
        "model": ErrorOut,
        "description": "Not possible in the current state (a status change, a duplicate)",
    },
    413: {"model": ErrorOut, "description": "The request body is larger than the upload limit"},
    422: {"model": ErrorOut | ValidationOut, "description": "A parameter or the body is invalid"},
}
