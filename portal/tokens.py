"""One-time links sent by e-mail: sign-up confirmation and password reset.

The link carries a random token; the database keeps its SHA-256 only. A token
is used at most once (one UPDATE marks it used and returns its user), expires,
and issuing a new one for the same purpose retires the older ones.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import asyncpg

LIFETIMES = {
    "confirm": timedelta(days=3),
    "reset": timedelta(hours=1),
}


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def issue(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, purpose: str) -> str:
    """A new token for ``purpose``; earlier unused ones for the same purpose stop working."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        """WITH retired AS (
               UPDATE email_tokens SET used_at = now()
               WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL)
           INSERT INTO email_tokens (user_id, purpose, token_hash, expires_at)
           VALUES ($1, $2, $3, now() + $4::interval)""",
        user_id, purpose, _hash(token), LIFETIMES[purpose],
    )
    return token


async def peek(conn: asyncpg.Connection | asyncpg.Pool, token: str, purpose: str) -> int | None:
    """The user of a live token, without using it (to show the form it leads to)."""
    return await conn.fetchval(
        "SELECT user_id FROM email_tokens WHERE token_hash = $1 AND purpose = $2"
        " AND used_at IS NULL AND expires_at > now()",
        _hash(token), purpose,
    )


async def consume(conn: asyncpg.Connection | asyncpg.Pool, token: str, purpose: str) -> int | None:
    """Use a live token once: its user, or None if it is unknown, used or expired."""
    if not token or len(token) > 100:
        return None
    return await conn.fetchval(
        "UPDATE email_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = $2"
        " AND used_at IS NULL AND expires_at > now() RETURNING user_id",
        _hash(token), purpose,
    )
