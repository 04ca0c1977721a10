"""Rendering pages: the template context every page gets, flash messages, e-mail links.

Handlers call :func:`render`; the frame (layout, menu, user menu, theme,
language, CSRF token, flash messages) is filled in by :func:`frame_context`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import SESSION_KEY, Session, get_session

from gateway.base.app import SETTINGS
from portal import csrf, i18n, menu
from portal.auth import PORTAL, PORTAL_MATCHED, user_of
from portal.menu import MenuEntry
from portal.tenancy import brand_color

STATIC_DIR = Path(__file__).parent / "static"
_FLASH = "_flash"
STATIC_VERSIONS = web.AppKey("herald_static_versions", dict)
CATALOGS = web.AppKey("herald_catalogs", i18n.Catalogs)


def render(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *,
    status: int = 200, active: str = "", title: str = "",
    menu_entries: Sequence[MenuEntry] = menu.CAMPAIGN_MENU,
) -> web.Response:
    """Render ``template`` in the frame; ``active`` names the highlighted menu entry."""
    values = frame_context(request)
    values.update(context or {})
    values.setdefault("active", active)
    values.setdefault("page_title", title)
    user = user_of(request)
    values.setdefault("menu", menu.visible(menu_entries, getattr(user, "role", None), user))
    response = aiohttp_jinja2.render_template(template, request, values, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def flash(request: web.Request, message: str, kind: str = "success", **variables: Any) -> None:
    """Show ``message`` (a message id) on the next page rendered for this session."""
    session = await get_session(request)
    pending = list(session.get(_FLASH, []))
    pending.append([kind, i18n.gettext(message, **variables)])
    session[_FLASH] = pending[-5:]


def theme_of(request: web.Request) -> str:
    """'light' or 'dark': the user's choice, else the visitor's cookie."""
    user = user_of(request)
    if user is not None:
        return user.theme
    return "dark" if request.cookies.get(i18n.THEME_COOKIE) == "dark" else "light"


def static_url(request: web.Request, name: str) -> str:
    """URL of a static file with its content hash, so browsers may cache it for long."""
    versions = request.app[STATIC_VERSIONS]
    return f"/static/{name}?v={versions.get(name, '0')}"


def static_versions() -> dict[str, str]:
    return {
        str(path.relative_to(STATIC_DIR)): hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC_DIR.rglob("*") if path.is_file()
    }


def public_base(request: web.Request) -> str:
    """Scheme and host for links in e-mail.

    A request that reached a portal by its own host name gets links to that
    host (white-label). Otherwise the configured public URL is used, so a
    forged Host header cannot point a password-reset link elsewhere; without
    one (development) the request's own address is the best guess.
    """
    settings = request.app[SETTINGS]
    scheme = "https" if settings.secure_cookies else request.scheme
    if request.get(PORTAL_MATCHED):
        return f"{scheme}://{request.host}"
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"{scheme}://{request.host}"


def frame_context(request: web.Request) -> dict[str, Any]:
    """What every page template may use: portal, user, theme, language, CSRF token, flashes.

    The portal middleware has loaded the session already, so this needs no I/O.
    """
    portal = request.get(PORTAL)
    session: Session | None = request.get(SESSION_KEY)
    if portal is None or session is None:
        return {"request": request}
    flashes = session.pop(_FLASH, []) if _FLASH in session else []
    language = i18n.current_language()
    user = user_of(request)
    return {
        "request": request,
        "portal": portal,
        "user": user,
        "theme": theme_of(request),
        "lang": language,
        "languages": [(code, i18n.language_name(code)) for code in portal.languages],
        "csrf_token": csrf.token(session),
        "csrf_field": csrf.FIELD,
        "flashes": flashes,
        "static": lambda name: static_url(request, name),
        "brand_color": brand_color(portal),
        "theme_css": f"/theme.css?c={brand_color(portal).lstrip('#')}",
    }
