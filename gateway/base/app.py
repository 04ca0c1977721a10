"""The aiohttp application: resources, middlewares, health and metrics.

``create_app`` builds the base application every area hangs its routes on.
Pools and clients are opened and closed in ``cleanup_ctx``; every slot on the
app is a typed ``web.AppKey``.

``app[HEALTH]`` is the one registry of this process's background services for
``/healthz``: a name (``smpp_server``, ``vendor_connectors``…) and a cheap check
answering ``"ok"`` or why not. :func:`gateway.runtime.services.build_services` fills it
with the services of the process's role; ``/healthz`` answers 503 when any of
them, PostgreSQL or Redis is not ok, and ``/healthz?service=NAME`` asks about
one service (404 when this process does not run it).
"""

from __future__ import annotations

import asyncio
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
from gateway.base import logs

log = logging.getLogger("herald.http")

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
METRICS = web.AppKey("metrics", CollectorRegistry)
HTTP_REQUESTS = web.AppKey("http_requests", Counter)
HTTP_LATENCY = web.AppKey("http_latency", Histogram)

# A service's readiness: "ok", or the reason it is not ready.
HealthCheck = Callable[[], str]
HEALTH = web.AppKey("health", dict[str, HealthCheck])


def task_health(task: asyncio.Task | None) -> str:
    """``"ok"`` while a service's background task runs, else why it does not."""
    if task is None:
        return "not running"
    if not task.done():
        return "ok"
    if task.cancelled():
        return "stopped"
    exc = task.exception()
    return "stopped" if exc is None else f"failed: {exc!r}"


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


def _probe(check: HealthCheck) -> str:
    try:
        return check()
    except Exception as exc:  # a broken check is a reason too, not a 500
        return f"error: {exc!r}"


def health_status(checks: dict[str, str], services: dict[str, str], wanted: str | None) -> int:
    """The HTTP status of ``/healthz``. Pure.

    Without ``wanted``: 200 when every check and service is ok, else 503. With it:
    404 when this process does not run that service, else 200 when it and
    PostgreSQL and Redis are ok (the other services do not matter), else 503.
    """
    if wanted is not None:
        if wanted not in services:
            return 404
        services = {wanted: services[wanted]}
    ok = all(v == "ok" for v in (*checks.values(), *services.values()))
    return 200 if ok else 503


_STATUS_WORD = {200: "ok", 404: "absent", 503: "unavailable"}


async def healthz(request: web.Request) -> web.Response:
    """PostgreSQL, Redis and this process's services (see the module doc): 200, 503 or 404."""
    app = request.app
    checks: dict[str, str] = {}
    try:
        await app[DB].fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {exc}"
    try:
        await app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    services = {name: _probe(check) for name, check in app[HEALTH].items()}
    status = health_status(checks, services, request.query.get("service"))
    settings = app[SETTINGS]
    return web.json_response(
        {"status": _STATUS_WORD[status], **checks, "worker": settings.worker,
         "role": settings.role, "services": services},
        status=status,
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
    app[HEALTH] = {}  # filled once the services are built, after the app is frozen
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
