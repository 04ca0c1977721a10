"""The Herald process: embedded servers, migrations, seed, HTTP and SMPP servers.

``Herald`` owns everything one process runs, starts it in dependency order and
stops it in reverse on SIGINT/SIGTERM within the shutdown timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal

import asyncpg
from aiohttp import web

from billing import refbook
from config.settings import Settings
from gateway.base.app import create_app
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner
from gateway.intake import api
from gateway.runtime.services import build_services
from gateway.runtime.workers import Workers
from gateway.send import viber_connector
from gateway.store import partitions
from portal import web as portal_web
from shortener import web as shortener_web

log = logging.getLogger("herald.main")

def build_app(settings: Settings) -> web.Application:
    """The full web application: the base, then each area's routes (the composition root)."""
    app = create_app(settings)
    # shortener_web after portal_web: the short domains' 404 page uses the portal's templates
    for setup in (api.setup, viber_connector.setup, portal_web.setup, shortener_web.setup):
        setup(app)
    return app


async def ensure_secret(conn: asyncpg.Connection, name: str, given: str = "") -> str:
    """The shared secret ``name``: the operator's value, else one generated once and kept."""
    if given:
        return given
    value = secrets.token_urlsafe(48)
    await conn.execute(
        "INSERT INTO app_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        name, value,
    )
    return await conn.fetchval("SELECT value FROM app_secrets WHERE name = $1", name)


async def prepare_database(settings: Settings) -> Settings:
    """Migrate, seed the first owner, settle the secret key; returns the final settings."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn)
        # A database left stopped for months gets this month's partition before traffic.
        await partitions.ensure_months(conn)
        result = await seed_system_owner(
            conn, admin_email=settings.admin_email, admin_password=settings.admin_password
        )
        if result.generated_password:
            # Printed once, on purpose: the operator needs it to sign in the first time.
            print(
                f"\n  First admin: {result.admin_email}  password: {result.generated_password}\n"
                "  (shown once; set HERALD_ADMIN_PASSWORD to choose it)\n",
                flush=True,
            )
        # A fresh install gets the world reference book (countries, and networks where known).
        added = await refbook.seed_default(conn)
        if added:
            log.info("event=reference_book_seeded prefixes=%s", added)
        secret = await ensure_secret(conn, "secret_key", settings.secret_key)
    finally:
        await conn.close()
    return settings.replace(secret_key=secret)


class Herald:
    """Everything one Herald process runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pg: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.runner: web.AppRunner | None = None
        self.services: list = []  # objects with async start() / stop(), started after HTTP

    def start_embedded(self) -> None:
        """Start the embedded PostgreSQL / Redis for whichever URL is not set."""
        settings = self.settings
        changes: dict[str, str] = {}
        if not settings.database_url:
            self.pg = EmbeddedPostgres(settings.var_dir / "postgres", fast=settings.embedded_pg_fast)
            changes["database_url"] = self.pg.start()
        if not settings.redis_url:
            self.redis = EmbeddedRedis(settings.var_dir / "redis")
            changes["redis_url"] = self.redis.start()
        if changes:
            self.settings = settings.replace(**changes)

    def stop_embedded(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_embedded)
        self.settings = await prepare_database(self.settings)
        app = build_app(self.settings)
        self.runner = web.AppRunner(
            app, shutdown_timeout=self.settings.shutdown_timeout / 2, handle_signals=False,
            access_log=None,
        )
        await self.runner.setup()
        self.services = build_services(app)
        for service in self.services:
            await service.start()
        # Listen last: once /healthz answers, the SMPP server and the workers are up too
        # (build_services registered them; /healthz lists them and turns 503 when one stops).
        # A worker shares its port with its siblings (gateway.runtime.workers).
        site = web.TCPSite(self.runner, self.settings.http_host, self.settings.http_port,
                           reuse_port=self.settings.worker > 0 or None)
        await site.start()
        log.info(
            "event=started http=http://%s:%s smpp=%s:%s",
            self.settings.http_host, self.settings.http_port,
            self.settings.smpp_host, self.settings.smpp_port,
        )

    async def stop(self) -> None:
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.stop(), self.settings.shutdown_timeout / 2)
        if self.runner is not None:
            await self.runner.cleanup()
        await asyncio.to_thread(self.stop_embedded)
        log.info("event=stopped")


def _tune_gc() -> None:
    """Keep the collector off the hot path of a long-running server.

    What start-up allocated (modules, pools, tables) lives for the whole run:
    freezing it spares every later collection from walking it again, and a
    larger first-generation threshold makes collections rarer under load
    (measured about 15% less CPU per API recipient).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def serve(settings: Settings) -> None:
    """Run Herald until SIGINT or SIGTERM (as the parent of workers with ``HERALD_WORKERS`` > 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.workers > 1:
        await _supervise(settings, stop)
        return
    herald = Herald(settings)
    try:
        await herald.start()
        _tune_gc()
        await stop.wait()
        log.info("event=shutdown_requested")
    finally:
        await herald.stop()


async def _supervise(settings: Settings, stop: asyncio.Event) -> None:
    """The parent of ``settings.workers`` processes (see :mod:`gateway.runtime.workers`)."""
    herald = Herald(settings)
    workers: Workers | None = None
    try:
        await asyncio.to_thread(herald.start_embedded)
        prepared = await prepare_database(herald.settings)
        workers = Workers(prepared)
        ports = workers.fix_ports()
        workers.start()
        log.info("event=started workers=%d http=http://%s:%s smpp=%s:%s", ports.workers,
                 ports.http_host, ports.http_port, ports.smpp_host, ports.smpp_port)
        await workers.watch(stop)
        log.info("event=shutdown_requested")
    finally:
        if workers is not None:
            # Each worker takes up to the shutdown timeout itself; then it is killed.
            await workers.stop(settings.shutdown_timeout + 5.0)
        await asyncio.to_thread(herald.stop_embedded)
        log.info("event=stopped")
