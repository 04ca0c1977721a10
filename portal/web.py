"""The Campaign Portal on the Herald application: ``setup(app)`` is all it takes.

Called by ``gateway.runtime.main.build_app``. It installs templates (aiohttp-jinja2
with gettext), sessions in Redis, the portal and CSRF middlewares, static
files and every page's routes.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp_session import session_middleware

from gateway.base.app import SETTINGS
from portal import csrf, i18n
from portal.middleware import is_portal_request, portal_middleware
from portal.pages import ROUTE_TABLES
from portal.pages import imports as contact_imports
from portal.render import CATALOGS, STATIC_DIR, STATIC_VERSIONS, static_versions
from portal.sessions import RedisSessionStorage

TEMPLATES_DIR = Path(__file__).parent / "templates"


def setup(app: web.Application) -> None:
    """Add the portal (pages, sessions, templates, static files) to ``app``."""
    settings = app[SETTINGS]
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    i18n.install_jinja(env)
    env.globals["language_name"] = i18n.language_name
    app[CATALOGS] = i18n.load_catalogs()
    app[STATIC_VERSIONS] = static_versions()

    storage = RedisSessionStorage(secure=settings.secure_cookies)
    app.middlewares.append(session_middleware(storage))
    app.middlewares.append(portal_middleware)
    app.middlewares.append(csrf.make_middleware(is_portal_request))

    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.on_response_prepare.append(_cache_static)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    contact_imports.install(app)  # the background runner of contact imports


async def _cache_static(request: web.Request, response: web.StreamResponse) -> None:
    # Static URLs carry their content hash (render.static_url), so they never change.
    if request.path.startswith("/static/") and "v" in request.query:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
