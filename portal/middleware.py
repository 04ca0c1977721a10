"""The portal's request pipeline: portal and user, language, error pages, headers.

Runs for portal pages only: the JSON API (``/api/``), health, metrics and
static files skip it, so they pay for no session or portal lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_session import get_session

from config.errors import HeraldError, NotFound
from gateway.base.app import DB, REDIS
from portal import accounts, i18n, sessions
from portal.auth import GENERATION, PORTAL, PORTAL_MATCHED, UID, USER
from portal.i18n import N_
from portal.render import CATALOGS, render
from portal.tenancy import portal_for_request

log = logging.getLogger("herald.portal")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SKIP = ("/api/", "/static/", "/healthz", "/metrics")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Everything the portal serves is its own: no CDN, no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}

ERROR_TITLES = {
    400: N_("Something is wrong with this request"),
    403: N_("You cannot do that"),
    404: N_("Page not found"),
    405: N_("Page not found"),
    409: N_("That clashes with something that exists"),
    413: N_("That upload is too large"),
}
ERROR_TEXTS = {
    403: N_("You do not have access to this page, or the form expired. Go back, reload the page and try again."),
    404: N_("The page you asked for does not exist or is not yours to see."),
    405: N_("The page you asked for does not exist or is not yours to see."),
    413: N_("Files sent to the portal can be at most 10 MB. Nothing was saved: go back and choose a smaller file."),
}


def is_portal_request(request: web.Request) -> bool:
    return not request.path.startswith(_SKIP)


def choose_language(request: web.Request, user: accounts.Account | None, offered: tuple[str, ...], default: str) -> str:
    """The user's language, else the visitor's cookie, else Accept-Language, else the portal's."""
    if user is not None and user.language in i18n.LANGUAGES:
        return user.language
    cookie = request.cookies.get(i18n.LANGUAGE_COOKIE, "")
    if cookie in offered:
        return cookie
    negotiated = i18n.negotiate(request.headers.get("Accept-Language", ""), list(offered))
    if negotiated:
        return negotiated
    return default if default in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE


async def _signed_in_user(request: web.Request, portal_id: int) -> accounts.Account | None:
    session = await get_session(request)
    uid = session.get(UID)
    if not uid:
        return None
    if session.get(GENERATION) != await sessions.generation(request.app[REDIS], uid):
        session.invalidate()  # signed out everywhere since
        return None
    user = await accounts.load(request.app[DB], uid)
    if (
        user is None or user.status != "active" or user.partner_status != "active"
        or user.portal_id != portal_id
    ):
        session.invalidate()
        return None
    return user


@web.middleware
async def portal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_portal_request(request):
        return await handler(request)
    try:
        portal, matched = await portal_for_request(request.app[DB], request.host)
    except NotFound:
        raise web.HTTPServiceUnavailable(text="No portal is configured.") from None
    request[PORTAL] = portal
    request[PORTAL_MATCHED] = matched
    user = await _signed_in_user(request, portal.id)
    if user is not None:
        request[USER] = user
    language = choose_language(request, user, portal.languages, portal.default_language)
    tokens = i18n.activate(request.app[CATALOGS], language)
    try:
        try:
            response = await handler(request)
        except HeraldError as exc:
            response = _error_page(request, exc.http_status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.status >= 500 or exc.content_type == "application/json":
                raise
            response = _error_page(request, exc.status, "")
    finally:
        i18n.deactivate(tokens)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    title = ERROR_TITLES.get(status, ERROR_TITLES[400])
    text = message or ERROR_TEXTS.get(status, "")
    return render(
        request, "error.html", {"status": status, "error_title": title, "error_text": text},
        status=status,
    )
