"""The platform's root exception and the domain errors every edge understands.

It lives in config/, the leaf package, so that every layer (billing, smpp ingress,
portal) can raise and catch the same errors without importing upward.

Each error knows what it means to each edge: the HTTP status a middleware
answers with, and the SMPP command_status the SMPP ingress answers with.
"""

from __future__ import annotations


class HeraldError(Exception):
    """Root of Herald's own errors."""

    http_status: int = 400
    smpp_status: int = 0x00000008  # ESME_RSYSERR

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(HeraldError):
    """The object does not exist, or belongs to another tenant (same answer for both)."""

    http_status = 404


class Forbidden(HeraldError):
    http_status = 403


class Invalid(HeraldError):
    """Input that breaks a rule; ``field`` names the input when there is one."""

    http_status = 400


class Conflict(HeraldError):
    http_status = 409
