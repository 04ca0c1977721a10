"""Shared fixtures: real PostgreSQL and Redis for every test.

By default the suite starts the embedded servers once (fsync off) in a
temporary folder; ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` point it at
servers of your own instead. The schema is migrated once into a template
database. Tests then take either

- ``conn``: one connection inside a transaction rolled back at the end (fast,
  for SQL-level tests), or
- ``db_url``: a fresh database cloned from the template (for tests that run
  the application or several connections).

Redis is flushed before each test that asks for it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from config.settings import Settings, load_settings
from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner

ADMIN_EMAIL = "admin@herald.test"
ADMIN_PASSWORD = "admin-password-1"
_TEMPLATE = "herald_template"
_counter = itertools.count()


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def servers_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="herald-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(servers_dir: Path) -> str:
    """URL of a PostgreSQL server (its maintenance database)."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    server = EmbeddedPostgres(servers_dir / "pg", fast=True)
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_url(servers_dir: Path) -> str:
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    server = EmbeddedRedis(servers_dir / "redis")
    yield server.start()
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_url(pg_url: str) -> str:
    """A migrated and seeded database that test databases are cloned from."""
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {_TEMPLATE}")
    finally:
        await admin.close()
    url = _with_db(pg_url, _TEMPLATE)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await seed_system_owner(conn, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
    finally:
        await conn.close()
    return url


async def clone_database(pg_url: str) -> str:
    """A new database cloned from the template; returns its URL."""
    name = f"herald_t{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
    finally:
        await admin.close()
    return _with_db(pg_url, name)


async def drop_database(pg_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_url(pg_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh database of the current schema, dropped after the test."""
    url = await clone_database(pg_url)
    yield url
    await drop_database(pg_url, url)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_db_url(pg_url: str, template_url: str) -> AsyncIterator[str]:
    """One database for the whole session, used by the rolled-back ``conn`` fixture."""
    url = await clone_database(pg_url)
    yield url
    await drop_database(pg_url, url)


@pytest_asyncio.fixture(loop_scope="session")
async def conn(shared_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    connection = await asyncpg.connect(shared_db_url)
    from gateway.base.app import _init_connection

    await _init_connection(connection)
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


@pytest_asyncio.fixture(loop_scope="session")
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database."""
    p = await open_pool(db_url, 10)
    yield p
    await p.close()


@pytest_asyncio.fixture(loop_scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(db_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for an in-process Herald on a fresh database."""
    base = load_settings({})
    return base.replace(
        database_url=db_url, redis_url=redis_url, var_dir=tmp_path,
        http_port=0, smpp_port=0, short_port=0, secret_key="test-secret-key-" + "x" * 32,
        admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def make_client() -> AsyncIterator[Callable]:
    """``await make_client(app)`` gives an aiohttp TestClient, closed after the test.

    Clients of one application share its server (each with its own cookies), so the
    application starts once: starting it again would run its start-up a second time.
    """
    from aiohttp.test_utils import TestClient, TestServer

    clients: list[TestClient] = []
    servers: dict[int, TestServer] = {}

    async def factory(app, **kwargs) -> TestClient:
        server = servers.get(id(app))
        if server is None:
            server = servers[id(app)] = TestServer(app)
        client = TestClient(server, **kwargs)
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        await client.close()
