"""Cross-site request forgery protection for the portal's forms.

Each session holds a random token. Every form carries it in a hidden field
(``_csrf``; the form macros add it) and scripts send it in ``X-CSRF-Token``.
A state-changing request whose token is missing or different is refused with
403 before the handler runs. SameSite=Lax cookies already stop most cross-site
posts; the token covers the rest (old browsers, same-site subdomains).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import Session, get_session

FIELD = "_csrf"
HEADER = "X-CSRF-Token"
SESSION_KEY = "csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def token(session: Session) -> str:
    """The session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


async def request_token(request: web.Request) -> str:
    return token(await get_session(request))


class CsrfRejected(web.HTTPForbidden):
    """The form's token did not match the session's."""


def make_middleware(
    applies: Callable[[web.Request], bool],
) -> Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[web.StreamResponse]]:
    """The middleware, checking requests for which ``applies(request)`` is true."""

    @web.middleware
    async def csrf_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method in SAFE_METHODS or not applies(request):
            return await handler(request)
        session = await get_session(request)
        expected = session.get(SESSION_KEY, "")
        given = request.headers.get(HEADER, "")
        if not given and request.content_type in (
            "application/x-www-form-urlencoded", "multipart/form-data"
        ):
            # aiohttp caches the parsed form, so the handler reads it again for free.
            given = str((await request.post()).get(FIELD, ""))
        if not expected or not given or not hmac.compare_digest(expected, given):
            raise CsrfRejected()
        return await handler(request)

    return csrf_middleware
