"""The first start: the root of the partner tree, a default portal and an admin."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import asyncpg

from accounts.users import hash_password

log = logging.getLogger("herald.seed")


@dataclass(frozen=True, slots=True)
class SeedResult:
    created: bool
    admin_email: str
    generated_password: str | None  # shown once when Herald made it up


_SEED_LOCK = 0x48455242  # "HERB"


async def seed_system_owner(
    conn: asyncpg.Connection, *, admin_email: str, admin_password: str = ""
) -> SeedResult:
    """Create the system owner, its default portal and first admin unless they exist."""
    async with conn.transaction():
        # Serialise concurrent first starts of several processes. The key travels as a
        # parameter: hex literals in SQL need PostgreSQL 16, and a DATABASE_URL may be older.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEED_LOCK)
        if await conn.fetchval("SELECT 1 FROM partners WHERE kind = 'owner'"):
            return SeedResult(False, admin_email, None)
        portal_id = await conn.fetchval(
            """INSERT INTO portals (name, host, is_default, support_email)
               VALUES ('Herald', 'localhost', true, $1) RETURNING id""",
            admin_email,
        )
        owner_id = await conn.fetchval(
            """INSERT INTO partners (kind, name, portal_id, company_name, company_email)
               VALUES ('owner', 'System owner', $1, 'System owner', $2) RETURNING id""",
            portal_id, admin_email,
        )
        await conn.execute("UPDATE portals SET owner_partner_id = $1 WHERE id = $2", owner_id, portal_id)
        generated = None
        if not admin_password:
            generated = admin_password = secrets.token_urlsafe(12)
        await conn.execute(
            """INSERT INTO users (partner_id, portal_id, email, password_hash, first_name,
                                  last_name, role, status, email_confirmed_at)
               VALUES ($1, $2, $3, $4, 'System', 'Owner', 'owner_admin', 'active', now())""",
            owner_id, portal_id, admin_email, hash_password(admin_password),
        )
    log.info("event=seeded owner_id=%s portal_id=%s admin=%s", owner_id, portal_id, admin_email)
    return SeedResult(True, admin_email, generated)
