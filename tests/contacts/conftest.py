"""Contacts fixtures: partners with users on the rolled-back ``conn``."""

from __future__ import annotations

import pytest_asyncio


async def new_partner(conn, name: str = "Acme") -> tuple[int, int]:
    """A client partner under the system owner and one user of it: (partner_id, user_id)."""
    owner, portal = await conn.fetchrow("SELECT id, portal_id FROM partners WHERE kind = 'owner'")
    partner_id = await conn.fetchval(
        "INSERT INTO partners (parent_id, kind, name, portal_id) VALUES ($1, 'client', $2, $3) RETURNING id",
        owner, name, portal)
    user_id = await conn.fetchval(
        """INSERT INTO users (partner_id, portal_id, email, password_hash, role, status)
           VALUES ($1, $2, $3, 'x', 'user', 'active') RETURNING id""",
        partner_id, portal, f"{name.lower()}-{partner_id}@contacts.test")
    return partner_id, user_id


@pytest_asyncio.fixture(loop_scope="session")
async def tenant(conn) -> tuple[int, int]:
    return await new_partner(conn, "Acme")


@pytest_asyncio.fixture(loop_scope="session")
async def other(conn) -> tuple[int, int]:
    return await new_partner(conn, "Rival")
