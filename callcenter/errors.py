"""Errors that carry data: a stable ``error_id``, a message and details, mapped to HTTP once."""

from __future__ import annotations

from typing import Any


class CallCenterError(Exception):
    status_code = 400
    error_id = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(CallCenterError):
    status_code = 404
    error_id = "not_found"


class Conflict(CallCenterError):
    status_code = 409
    error_id = "conflict"


class InvalidTransition(Conflict):
    error_id = "invalid_transition"
