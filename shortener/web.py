"""The redirect service on HTTP: short links answered, clicks handed to the writer.

Requests whose ``Host`` is a short domain are answered by :meth:`Shortener.handle`
in two places, with the same code and state:

* on Herald's HTTP port, by a middleware placed first in the application
  (:func:`setup`), so that an install with one port and one proxy rule works;
* with ``HERALD_SHORT_LISTENER=true``, on a port of its own
  (``HERALD_SHORT_HOST`` / ``HERALD_SHORT_PORT``, 8081 by default) served by
  aiohttp's low-level server: no router, no session, no portal middleware,
  about half the CPU per redirect (README "Benchmarks"). This is the port to
  give the proxy's short-domain rule at volume.

A known, active code on an enabled domain answers ``302`` to its original URL
at once; the click goes to the :class:`~shortener.writer.ClickWriter`'s
memory. Unknown, archived or expired codes, and every path of a switched-off
domain, answer a ``404`` page in the visitor's language (Accept-Language,
among the portal's) with the brand of the link's portal, or of the first
portal the domain is granted to, or of the default portal.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web
from prometheus_client import Counter

from config.settings import Settings
from gateway.base.app import DB, METRICS, REDIS, SETTINGS
from portal import i18n
from portal.render import CATALOGS
from portal.tenancy import brand_color, contrast_text, shade
from shortener import codes, domains
from shortener.resolver import Resolver
from shortener.writer import ClickWriter

log = logging.getLogger("herald.shortener")

_REDIRECT_HEADERS = {"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"}
_ALLOW = "GET, HEAD"
_BRAND_TTL = 60.0


class NotFoundPages:
    """The branded, translated 404 page, rendered once per portal and language."""

    def __init__(self, shortener: Shortener) -> None:
        self.shortener = shortener
        self._brands: dict[int | None, tuple[float, domains.Brand | None]] = {}
        self._pages: dict[tuple[int | None, str], tuple[bytes, str]] = {}

    async def _brand(self, portal_id: int | None) -> domains.Brand | None:
        now = time.monotonic()
        cached = self._brands.get(portal_id)
        if cached is None or cached[0] < now:
            found = await domains.brand(self.shortener.pool, portal_id)
            self._brands[portal_id] = cached = (now + _BRAND_TTL, found)
            self._pages = {k: v for k, v in self._pages.items() if k[0] != portal_id}
        return cached[1]

    async def response(self, request: web.BaseRequest, portal_id: int | None) -> web.Response:
        brand = await self._brand(portal_id)
        env, catalogs = self.shortener.env, self.shortener.catalogs
        if brand is None or env is None or catalogs is None:
            return web.Response(status=404, text="Not found")
        language = i18n.negotiate(request.headers.get("Accept-Language", ""), brand.languages)
        language = language or (brand.default_language if brand.default_language in i18n.LANGUAGES
                                else i18n.DEFAULT_LANGUAGE)
        key = (portal_id, language)
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = self._render(brand, language)
        body, policy = page
        return web.Response(status=404, body=body, content_type="text/html", charset="utf-8", headers={
            "Content-Security-Policy": policy, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Content-Language": language,
        })

    def _logo(self, brand: domains.Brand) -> str:
        """The logo's address as seen from a short domain: a path of the portal's own
        (``/static/…``) would be asked of the short domain, so it needs the portal's URL."""
        logo = brand.logo_url
        if logo.startswith(("https://", "http://", "data:image/")):
            return logo
        base = self.shortener.public_url
        return f"{base}{logo}" if logo.startswith("/") and not logo.startswith("//") and base else ""

    def _render(self, brand: domains.Brand, language: str) -> tuple[bytes, str]:
        color = brand_color(brand)  # type: ignore[arg-type]  (reads .primary_color only)
        style = (
            ":root{"
            f"--brand:{color};--brand-strong:{shade(color, 0.82)};--brand-ink:{contrast_text(color)};"
            "}" + _STYLE
        )
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        with i18n.use_language(self.shortener.catalogs, language):
            html = self.shortener.env.get_template("shortener/not_found.html").render(
                brand=brand, logo=self._logo(brand), lang=language, style=style)
        policy = (f"default-src 'none'; style-src 'sha256-{digest}'; img-src https: http: data:; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return html.encode(), policy


_STYLE = (
    "*{box-sizing:border-box}"
    "body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;"
    "font:16px/1.5 -apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Arial,sans-serif;"
    "background:#f5f6f8;color:#111827}"
    "@media (prefers-color-scheme:dark){body{background:#0e1117;color:#e6e8eb}"
    ".card{background:#161b22;border-color:#272e38}.muted{color:#939aa6}}"
    ".card{max-width:30rem;margin:1.5rem;padding:2.25rem 2rem;background:#fff;border:1px solid #e5e7eb;"
    "border-radius:12px;text-align:center;border-top:4px solid var(--brand)}"
    ".brand{display:flex;align-items:center;justify-content:center;gap:.6rem;font-weight:650;margin-bottom:1.5rem}"
    ".brand img{max-height:36px;max-width:160px}"
    ".mark{width:36px;height:36px;border-radius:9px;background:var(--brand);color:var(--brand-ink);"
    "display:inline-flex;align-items:center;justify-content:center;font-weight:700}"
    ".code{font-size:3rem;font-weight:750;letter-spacing:-.03em;color:var(--brand);margin:0}"
    "h1{font-size:1.3rem;margin:.25rem 0 .5rem}.muted{color:#6b7280;margin:0}"
    "a{color:var(--brand-strong)}"
)


class Shortener:
    """The redirect service of one process: resolver, click writer, 404 pages, counters."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.resolver: Resolver | None = None
        self.writer: ClickWriter | None = None
        self.pages = NotFoundPages(self)
        self.env = None
        self.catalogs: i18n.Catalogs | None = None
        self.country_header = ""
        self.public_url = ""
        registry = app.get(METRICS)
        self._redirects = Counter("herald_short_redirects", "Short-link requests answered",
                                  ["result"], registry=registry)
        self._written = Counter("herald_short_clicks_written", "Clicks stored", registry=registry)
        self._dropped = Counter("herald_short_clicks_dropped", "Clicks dropped (backlog full)",
                                registry=registry)
        self._found = self._redirects.labels("redirect")
        self._missing = self._redirects.labels("not_found")

    @property
    def pool(self):
        return self.app[DB]

    async def start(self) -> None:
        settings: Settings = self.app[SETTINGS]
        self.country_header = settings.short_country_header
        self.public_url = settings.public_url.rstrip("/")
        self.env = aiohttp_jinja2.get_env(self.app) if aiohttp_jinja2.APP_KEY in self.app else None
        self.catalogs = self.app.get(CATALOGS)
        self.resolver = Resolver(self.app[DB], self.app.get(REDIS))
        self.writer = ClickWriter(self.app[DB], on_written=self._written.inc, on_dropped=self._dropped.inc)
        await self.resolver.start()
        await self.writer.start()

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
        if self.resolver is not None:
            await self.resolver.stop()

    def serves(self, host: str) -> bool:
        return self.resolver is not None and self.resolver.domain(host) is not None

    async def changed(self) -> None:
        """Links or domains changed (archived, added, switched off): see :meth:`Resolver.changed`."""
        if self.resolver is not None:
            await self.resolver.changed()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request to a short domain (see the module doc)."""
        resolver, writer = self.resolver, self.writer
        if resolver is None or writer is None:
            return web.Response(status=503, text="Starting", headers={"Retry-After": "1"})
        domain = resolver.domain(request.host)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="Method not allowed", headers={"Allow": _ALLOW})
        code = request.path[1:]
        if domain is None or not domain.enabled or not codes.is_code(code):
            return await self._not_found(request, domain.portal_id if domain else None)
        try:
            target = await resolver.target(domain.id, code)
        except Exception:
            log.exception("event=short_lookup_failed host=%s", domain.host)
            return web.Response(status=503, text="Try again in a moment", headers={"Retry-After": "5"})
        if target is None:
            return await self._not_found(request, domain.portal_id)
        if target.archived or (target.expires_at is not None and target.expires_at <= datetime.now(UTC)):
            return await self._not_found(request, target.portal_id)
        headers = request.headers
        country = headers.get(self.country_header, "") if self.country_header else ""
        writer.record(target.code_id, request.method == "HEAD", headers.get("User-Agent", ""),
                      headers.get("Referer", ""), country.upper() if _is_country(country) else "")
        self._found.inc()
        return web.Response(status=302, headers={"Location": target.url, **_REDIRECT_HEADERS})

    async def _not_found(self, request: web.BaseRequest, portal_id: int | None) -> web.Response:
        self._missing.inc()
        try:
            return await self.pages.response(request, portal_id)
        except Exception:
            log.exception("event=short_not_found_page_failed")
            return web.Response(status=404, text="Not found")


def _is_country(value: str) -> bool:
    return len(value) == 2 and value.isascii() and value.isalpha()


SHORTENER = web.AppKey("shortener", Shortener)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def short_domain_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """First in the application: a request to a short domain never reaches the portal."""
    shortener = request.app[SHORTENER]
    if shortener.serves(request.host):
        return await shortener.handle(request)
    return await handler(request)


async def _shortener_ctx(app: web.Application):
    shortener = app[SHORTENER]
    await shortener.start()
    yield
    await shortener.stop()


def setup(app: web.Application) -> None:
    """Answer short domains on this application (called by ``gateway.runtime.main.build_app``)."""
    app[SHORTENER] = Shortener(app)
    app.middlewares.insert(0, short_domain_middleware)
    app.cleanup_ctx.append(_shortener_ctx)


class RedirectListener:
    """The short-link port: aiohttp's low-level server calling :meth:`Shortener.handle`."""

    name = "short_links"  # in /healthz

    def __init__(self, app: web.Application) -> None:
        settings: Settings = app[SETTINGS]
        self.shortener = app[SHORTENER]
        self.host = settings.short_host
        self.port = settings.short_port
        self.reuse_port = settings.worker > 0
        self.shutdown_timeout = settings.shutdown_timeout / 2
        self._server: web.Server | None = None
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = web.Server(self.shortener.handle, access_log=None)
        self._listener = await asyncio.get_running_loop().create_server(
            self._server, self.host, self.port, reuse_port=self.reuse_port or None, backlog=1024)
        self.port = self._listener.sockets[0].getsockname()[1]
        log.info("event=short_links_listening address=%s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(self.shutdown_timeout)
        if self._listener is not None:
            await self._listener.wait_closed()

    def health(self) -> str:
        if self._listener is None or not self._listener.is_serving():
            return "not listening"
        return "ok"
