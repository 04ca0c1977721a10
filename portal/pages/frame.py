"""The frame around every page: dashboard, sections to come, top-up, theme and language."""

from __future__ import annotations

from aiohttp import web

from gateway.base.app import DB
from portal import accounts, i18n, tables
from portal.auth import login_required, portal_of, safe_next, signed_in, user_of
from portal.menu import CAMPAIGN_MENU
from portal.render import render
from portal.tenancy import brand_color, contrast_text, shade

routes = web.RouteTableDef()
PREF_COOKIE_AGE = 365 * 24 * 3600


@routes.get("/")
@login_required
async def dashboard(request: web.Request) -> web.Response:
    user = signed_in(request)
    key_count = await request.app[DB].fetchval(
        "SELECT count(*) FROM api_keys WHERE partner_id = $1 AND removed_at IS NULL", user.partner_id
    )
    return render(request, "dashboard.html", {"key_count": key_count}, active="dashboard",
                  title=i18n.gettext("Dashboard"))


def _unavailable(entry_key: str):
    entry = next(e for e in CAMPAIGN_MENU if e.key == entry_key)

    @login_required
    async def handler(request: web.Request) -> web.Response:
        return render(request, "unavailable.html", {"section": entry.label},
                      active=entry.key, title=i18n.gettext(entry.label))

    handler.__name__ = f"unavailable_{entry_key}"
    return handler


# Sections of the menu whose pages come in later issues.
for _key in ("campaigns", "statistics", "purchase", "finance"):
    _entry = next(e for e in CAMPAIGN_MENU if e.key == _key)
    routes.get(_entry.path)(_unavailable(_key))


@routes.get("/top-up")
@login_required
async def top_up(request: web.Request) -> web.Response:
    return render(request, "topup.html", {}, active="", title=i18n.gettext("Top up your balance"))


def _back(posted: object) -> str:
    """Where to return after a preference changes: the page the form was on."""
    return safe_next(str(posted or "") or None)


@routes.post("/prefs/theme")
async def set_theme(request: web.Request) -> web.Response:
    data = await request.post()
    theme = "dark" if data.get("theme") == "dark" else "light"
    user = user_of(request)
    if user is not None:
        await accounts.set_theme(request.app[DB], user.id, theme)
    # app.js switches the theme in place and asks for JSON; a plain form gets a redirect.
    response: web.Response = (
        web.json_response({"theme": theme}) if request.headers.get("X-Requested-With") == "fetch"
        else web.HTTPSeeOther(_back(data.get("next")))
    )
    response.set_cookie(i18n.THEME_COOKIE, theme, max_age=PREF_COOKIE_AGE, httponly=True,
                        samesite="Lax", path="/")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@routes.post("/prefs/language")
async def set_language(request: web.Request) -> web.Response:
    data = await request.post()
    language = str(data.get("language", ""))
    if language not in portal_of(request).languages:
        language = portal_of(request).default_language
    response = web.HTTPSeeOther(_back(data.get("next")))
    user = user_of(request)
    if user is not None:
        await accounts.set_language(request.app[DB], user.id, language)
    response.set_cookie(i18n.LANGUAGE_COOKIE, language, max_age=PREF_COOKIE_AGE, httponly=True,
                        samesite="Lax", path="/")
    raise response


@routes.post("/prefs/table/{table_id}")
@login_required
async def set_table_columns(request: web.Request) -> web.Response:
    table_id = request.match_info["table_id"]
    if not tables.valid_table_id(table_id):
        raise web.HTTPNotFound()
    data = await request.post()
    if data.get("reset"):
        value: dict = {}
    else:
        value = tables.clean_prefs((), data.getall("order", []), data.getall("visible", []))
    await accounts.save_ui_pref(request.app[DB], signed_in(request).id, tables.PREFS_SECTION,
                                table_id, value)
    raise web.HTTPSeeOther(_back(data.get("next")))


@routes.get("/theme.css")
async def theme_css(request: web.Request) -> web.Response:
    """The portal's brand colour as CSS variables (no inline styles: see the CSP)."""
    color = brand_color(portal_of(request))
    body = (
        ":root{"
        f"--brand:{color};--brand-strong:{shade(color, 0.82)};--brand-soft:{shade(color, 1.88)};"
        f"--brand-ink:{contrast_text(color)};"
        "}\n"
    )
    return web.Response(text=body, content_type="text/css",
                        headers={"Cache-Control": "public, max-age=300"})

