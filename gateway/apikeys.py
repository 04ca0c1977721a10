"""API keys: the credentials of the HTTP API (``Authorization: Bearer <key>``).

A key is a random secret shown to its owner once, at creation. Herald keeps
only its SHA-256, so the database never holds a usable key; verifying a key is
one indexed lookup by that hash. Keys belong to a partner, have a name unique
among that partner's keys, an optional callback URL for delivery reports and
an expiry chosen from a fixed list, which "refresh" starts again from now.
Removing a key keeps the row (``removed_at``) so the messages sent with it can
still name it; a removed or expired key never authenticates.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg

from config.errors import Conflict, HeraldError, Invalid, NotFound

KEY_PREFIX = "hrd_"
NAME_MAX = 60
CALLBACK_MAX = 2000

# Expiry choices offered at creation, as PostgreSQL intervals (None: never expires).
TTL_CHOICES: dict[str, str | None] = {
    "1d": "1 day",
    "7d": "7 days",
    "30d": "30 days",
    "3m": "3 months",
    "1y": "1 year",
    "never": None,
}

# last_used_at is written at most this often per key, so a busy key does not
# turn every API call into a row update.
TOUCH_EVERY_SECONDS = 60


class InvalidApiKey(HeraldError):
    """The bearer key is unknown, removed or expired (one answer for all three)."""

    http_status = 401
    smpp_status = 0x0000000E  # ESME_RINVPASWD


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    partner_id: int
    created_by: int | None
    name: str
    callback_url: str
    key_prefix: str
    ttl: str
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def status(self, now: datetime) -> str:
        """'active' or 'expired'."""
        return "expired" if self.expired(now) else "active"


_COLUMNS = """id, partner_id, created_by, name, callback_url, key_prefix, ttl, expires_at,
              last_used_at, created_at"""


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(**dict(row))


def generate_key() -> str:
    """A new random key: the prefix and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).digest()


def validate_name(name: str) -> str:
    """The key name, stripped; 1 to 60 characters."""
    name = (name or "").strip()
    if not name:
        raise Invalid("Enter a name for the key.", field="name")
    if len(name) > NAME_MAX:
        raise Invalid("The name can have at most 60 characters.", field="name")
    return name


def validate_callback_url(url: str) -> str:
    """An http(s) URL with a host, or empty for no callbacks."""
    url = (url or "").strip()
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > CALLBACK_MAX:
        raise Invalid("Enter a full http:// or https:// address.", field="callback_url")
    return url


def validate_ttl(ttl: str) -> str:
    if ttl not in TTL_CHOICES:
        raise Invalid("Choose when the key expires.", field="ttl")
    return ttl


_INSERT = f"""
INSERT INTO api_keys (partner_id, created_by, name, callback_url, key_hash, key_prefix, ttl,
                      expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::text::interval)
RETURNING {_COLUMNS}"""


async def create(
    conn: asyncpg.Connection | asyncpg.Pool, *, partner_id: int, created_by: int | None,
    name: str, callback_url: str = "", ttl: str = "30d",
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the plain key, which is never available again."""
    name = validate_name(name)
    callback_url = validate_callback_url(callback_url)
    ttl = validate_ttl(ttl)
    plain = generate_key()
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as connection:
            return await _insert(connection, partner_id, created_by, name, callback_url, ttl, plain)
    return await _insert(conn, partner_id, created_by, name, callback_url, ttl, plain)


async def _insert(
    conn: asyncpg.Connection, partner_id: int, created_by: int | None, name: str,
    callback_url: str, ttl: str, plain: str,
) -> tuple[ApiKey, str]:
    try:
        # A savepoint inside the caller's transaction: a clashing name leaves it usable.
        async with conn.transaction():
            row = await conn.fetchrow(
                _INSERT, partner_id, created_by, name, callback_url, hash_key(plain),
                plain[: len(KEY_PREFIX) + 6], ttl, TTL_CHOICES[ttl],
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "api_keys_name_per_partner":
            raise Conflict("A key with this name already exists.", field="name") from exc
        raise
    return _key(row), plain


_VERIFY = f"""
SELECT {_COLUMNS} FROM api_keys
WHERE key_hash = $1 AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > now())"""

_TOUCH = """
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))"""


async def verify(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> ApiKey:
    """The live key for a bearer value, its use recorded; :class:`InvalidApiKey` otherwise."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise InvalidApiKey("Invalid or expired API key.")
    row = await conn.fetchrow(_VERIFY, hash_key(key))
    if row is None:
        raise InvalidApiKey("Invalid or expired API key.")
    await conn.execute(_TOUCH, row["id"], float(TOUCH_EVERY_SECONDS))
    return _key(row)


def bearer_token(authorization: str) -> str:
    """The key of an ``Authorization: Bearer <key>`` header value ('' when absent)."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


_GET = f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1 AND partner_id = $2 AND removed_at IS NULL"


async def get(conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, key_id: int) -> ApiKey:
    """One of the partner's keys; another partner's key is :class:`NotFound` too."""
    row = await conn.fetchrow(_GET, key_id, partner_id)
    if row is None:
        raise NotFound("No such API key.")
    return _key(row)


_REFRESH = f"""
UPDATE api_keys SET expires_at = now() + (CASE ttl {" ".join(
    f"WHEN '{code}' THEN interval '{iv}'" for code, iv in TTL_CHOICES.items() if iv
)} END)
WHERE id = $1 AND partner_id = $2 AND removed_at IS NULL
RETURNING {_COLUMNS}"""


async def refresh(conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, key_id: int) -> ApiKey:
    """Start the key's validity period again from now (expired keys come back to life)."""
    row = await conn.fetchrow(_REFRESH, key_id, partner_id)
    if row is None:
        raise NotFound("No such API key.")
    return _key(row)


_REMOVE = """
UPDATE api_keys SET removed_at = now()
WHERE partner_id = $1 AND id = ANY($2::bigint[]) AND removed_at IS NULL
RETURNING id"""


async def remove(
    conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, key_ids: list[int]
) -> list[int]:
    """Remove keys for good; returns the ids removed (others' ids are ignored)."""
    rows = await conn.fetch(_REMOVE, partner_id, key_ids)
    return [r["id"] for r in rows]


async def remove_one(conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, key_id: int) -> None:
    if not await remove(conn, partner_id, [key_id]):
        raise NotFound("No such API key.")


_LIST = f"""
SELECT {_COLUMNS} FROM api_keys
WHERE partner_id = $1 AND removed_at IS NULL
  AND ($2 = '' OR name ILIKE '%' || $2 || '%')
  AND ($3 = '' OR ($3 = 'active') = (expires_at IS NULL OR expires_at > now()))
  AND ($4::timestamptz IS NULL OR (created_at, id) {{op}} ($4, $5))
ORDER BY created_at {{dir}}, id {{dir}}
LIMIT $6"""
_LIST_AFTER = _LIST.format(op="<", dir="DESC")
_LIST_BEFORE = _LIST.format(op=">", dir="ASC")


async def list_page(
    conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, *, search: str = "",
    status: str = "", after: tuple[datetime, int] | None = None,
    before: tuple[datetime, int] | None = None, limit: int = 25,
) -> list[ApiKey]:
    """Up to ``limit`` keys, newest first, after (or before) a (created_at, id) position.

    Keyset pagination: the position is the sort key of the last row shown, so
    a page costs the same wherever it is. With ``before`` the rows are still
    returned newest first.
    """
    search = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    status = status if status in ("active", "expired") else ""
    if before is not None:
        rows = await conn.fetch(_LIST_BEFORE, partner_id, search, status, *before, limit)
        rows = list(reversed(rows))
    else:
        at, at_id = after if after is not None else (None, 0)
        rows = await conn.fetch(_LIST_AFTER, partner_id, search, status, at, at_id, limit)
    return [_key(r) for r in rows]


async def refusal_reason(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> str:
    """Why :func:`verify` refused ``key``: 'removed', 'expired' or 'unknown'.

    Only the holder of the key can ask, so telling them is no leak; it saves
    them guessing whether to refresh the key or create a new one.
    """
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return "unknown"
    row = await conn.fetchrow(
        "SELECT removed_at IS NOT NULL AS removed, expires_at <= now() AS expired"
        " FROM api_keys WHERE key_hash = $1", hash_key(key),
    )
    if row is None:
        return "unknown"
    return "removed" if row["removed"] else "expired" if row["expired"] else "unknown"
