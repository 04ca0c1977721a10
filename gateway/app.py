"""The aiohttp application: resources, middlewares, health and metrics.

``create_app`` builds the base application every area hangs its routes on.
Pools and clients are opened and closed in ``cleanup_ctx``; every slot on the
app is a typed ``web.AppKey``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from config.errors import HeraldError
from config.settings import Settings
from gateway import logs

log = logging.getLogger("herald.http")

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
METRICS = web.AppKey("metrics", CollectorRegistry)
HTTP_REQUESTS = web.AppKey("http_requests", Counter)
HTTP_LATENCY = web.AppKey("http_latency", Histogram)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def open_pool(url: str, size: int) -> asyncpg.Pool:
    """A connection pool with Herald's type codecs (jsonb as Python objects)."""
    return await asyncpg.create_pool(
        url, min_size=min(2, size), max_size=size, init=_init_connection, reset=_keep_session,
        command_timeout=60, max_inactive_connection_lifetime=300,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (one round trip per acquire otherwise).

    Herald leaves no session state behind: no LISTEN, no session-level SET, and the
    one session-level advisory lock (an exclusive vendor bind) is unlocked before
    its connection goes back, or the connection is terminated. An open transaction
    is still rolled back by the pool itself.
    """


async def _db_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[DB] = await open_pool(settings.database_url, settings.db_pool_size)
    yield
    await app[DB].close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    client = aioredis.from_url(app[SETTINGS].redis_url, decode_responses=False)
    app[REDIS] = client
    yield
    await client.aclose()


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give each request an id (logged on every line) and count it."""
    rid = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:16]
    token = logs.context_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        app = request.app
        app[HTTP_REQUESTS].labels(request.method, name, str(status)).inc()
        app[HTTP_LATENCY].labels(name).observe(elapsed)
        log.info(
            "event=http method=%s path=%s status=%s ms=%.1f",
            request.method, request.path, status, elapsed * 1000,
        )
        logs.context_id.reset(token)


@web.middleware
async def domain_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn Herald's domain errors into HTTP answers in one place."""
    try:
        return await handler(request)
    except HeraldError as exc:
        if _wants_json(request):
            body: dict = {"error": exc.message or type(exc).__name__}
            if exc.field:
                body["field"] = exc.field
            return web.json_response(body, status=exc.http_status)
        raise _plain(exc) from exc
    except web.HTTPException:
        raise
    except Exception:
        log.exception("event=unhandled_error path=%s", request.path)
        if _wants_json(request):
            return web.json_response({"error": "internal error"}, status=500)
        raise


def _plain(exc: HeraldError) -> web.HTTPException:
    cls = {404: web.HTTPNotFound, 403: web.HTTPForbidden, 409: web.HTTPConflict}.get(
        exc.http_status, web.HTTPBadRequest
    )
    return cls(text=exc.message)


async def healthz(request: web.Request) -> web.Response:
    """PostgreSQL and Redis reachable? 200 with details, else 503."""
    checks: dict[str, str] = {}
    try:
        await request.app[DB].fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc}"
    try:
        await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this process's metrics."""
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings) -> web.Application:
    """The base application: resources, middlewares, /healthz and /metrics."""
    app = web.Application(
        middlewares=[request_context, domain_errors], client_max_size=12 * 1024 * 1024
    )
    app[SETTINGS] = settings
    registry = CollectorRegistry()
    app[METRICS] = registry
    app[HTTP_REQUESTS] = Counter(
        "herald_http_requests", "HTTP requests served", ["method", "route", "status"],
        registry=registry,
    )
    app[HTTP_LATENCY] = Histogram(
        "herald_http_request_seconds", "HTTP request latency", ["route"], registry=registry,
    )
    app.cleanup_ctx.append(_db_ctx)
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
