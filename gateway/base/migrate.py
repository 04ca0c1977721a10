"""Numbered SQL migrations, applied in order, each in its own transaction.

Files live in ``gateway/migrations`` as ``NNNN_name.sql``. Each applied file is
recorded in ``schema_migrations`` inside the same transaction, so a failing
file leaves the schema as it was. A PostgreSQL advisory lock keeps two
processes from migrating at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("herald.migrate")

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
_LOCK_KEY = 0x48455241  # "HERA": any constant shared by every Herald process
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """A migration file failed; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a badly named or duplicate file is an error."""
    if not directory.is_dir():
        raise MigrationError(f"{directory}: no such migrations folder")
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: name must look like 0001_some_name.sql")
        version = match.group(1)
        if version in found:
            raise MigrationError(f"{path.name}: version {version} also used by {found[version].path.name}")
        found[version] = Migration(version, path)
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations; returns the file names applied."""
    migrations = discover(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            sql = migration.path.read_text()
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version, migration.path.name,
                    )
            except asyncpg.PostgresError as exc:
                where = f" (line {exc.position})" if getattr(exc, "position", None) else ""
                raise MigrationError(f"{migration.path.name}{where}: {exc}") from exc
            log.info("event=migration_applied file=%s", migration.path.name)
            applied_now.append(migration.path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
