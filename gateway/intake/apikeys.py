"""API keys: the credentials of the HTTP API (``Authorization: Bearer <key>``), kept as
hashes, and each key's sealed callback signing secret (``gateway/intake/README.md``)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg

from config.errors import Conflict, HeraldError, Invalid, NotFound
from gateway.base import secretbox

KEY_PREFIX = "hrd_"
SIGNING_SECRET_PREFIX = "hrs_"
SIGNING_PURPOSE = "api-key-signing-secret"  # the secretbox label of these secrets
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


def generate_signing_secret() -> str:
    """A new callback signing secret: the prefix and 43 URL-safe characters (256 bits)."""
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


def seal_signing_secret(app_secret: str, key_hash: bytes, secret: str) -> bytes:
    """The stored form of a signing secret: sealed, and only valid on the row of ``key_hash``."""
    return secretbox.seal(app_secret, SIGNING_PURPOSE, secret.encode(), bytes(key_hash))


def open_signing_secret(app_secret: str, key_hash: bytes, sealed: bytes) -> str:
    """The signing secret of a stored row; :class:`gateway.base.secretbox.Unreadable` if it does not open."""
    return secretbox.unseal(app_secret, SIGNING_PURPOSE, sealed, bytes(key_hash)).decode()


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
                      expires_at, signing_secret, signing_secret_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::text::interval, $9,
        CASE WHEN $9::bytea IS NULL THEN NULL ELSE now() END)
RETURNING {_COLUMNS}"""


async def create(
    conn: asyncpg.Connection | asyncpg.Pool, *, partner_id: int, created_by: int | None,
    name: str, callback_url: str = "", ttl: str = "30d",
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the plain key, which is never available again.

    The key gets no signing secret here (one is issued when a callback first
    needs it); :func:`create_with_secret` is what the portal and the API use.
    """
    new = await _create(conn, partner_id, created_by, name, callback_url, ttl, app_secret="")
    return new.key, new.plain


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created, with the two values shown to its owner this once."""

    key: ApiKey
    plain: str
    signing_secret: str


async def create_with_secret(
    conn: asyncpg.Connection | asyncpg.Pool, *, app_secret: str, partner_id: int,
    created_by: int | None, name: str, callback_url: str = "", ttl: str = "30d",
) -> NewKey:
    """Create a key and its callback signing secret (sealed with ``app_secret``) in one row."""
    if not app_secret:
        raise ValueError("a secret key is needed to store the signing secret")
    return await _create(conn, partner_id, created_by, name, callback_url, ttl, app_secret)


async def _create(
    conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, created_by: int | None, name: str,
    callback_url: str, ttl: str, app_secret: str,
) -> NewKey:
    name = validate_name(name)
    callback_url = validate_callback_url(callback_url)
    ttl = validate_ttl(ttl)
    plain = generate_key()
    secret = generate_signing_secret() if app_secret else ""
    sealed = seal_signing_secret(app_secret, hash_key(plain), secret) if secret else None
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as connection:
            key = await _insert(connection, partner_id, created_by, name, callback_url, ttl, plain,
                                sealed)
    else:
        key = await _insert(conn, partner_id, created_by, name, callback_url, ttl, plain, sealed)
    return NewKey(key, plain, secret)


async def _insert(
    conn: asyncpg.Connection, partner_id: int, created_by: int | None, name: str,
    callback_url: str, ttl: str, plain: str, sealed: bytes | None,
) -> ApiKey:
    try:
        # A savepoint inside the caller's transaction: a clashing name leaves it usable.
        async with conn.transaction():
            row = await conn.fetchrow(
                _INSERT, partner_id, created_by, name, callback_url, hash_key(plain),
                plain[: len(KEY_PREFIX) + 6], ttl, TTL_CHOICES[ttl], sealed,
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "api_keys_name_per_partner":
            raise Conflict("A key with this name already exists.", field="name") from exc
        raise
    return _key(row)


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


_ROW_FOR_SECRET = f"""
SELECT {_COLUMNS}, key_hash FROM api_keys
WHERE id = $1 AND partner_id = $2 AND removed_at IS NULL FOR UPDATE"""

_SET_SECRET = """
UPDATE api_keys SET signing_secret = $2, signing_secret_at = now() WHERE id = $1"""


async def rotate_signing_secret(
    conn: asyncpg.Connection | asyncpg.Pool, partner_id: int, key_id: int, app_secret: str,
) -> tuple[ApiKey, str]:
    """Replace the key's signing secret; returns the key and the new secret, shown this once.

    Callbacks sent from now on (retries of older ones too) carry the new signature;
    the old secret stops working at once.
    """
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as connection:
            return await rotate_signing_secret(connection, partner_id, key_id, app_secret)
    secret = generate_signing_secret()
    async with conn.transaction():
        row = await conn.fetchrow(_ROW_FOR_SECRET, key_id, partner_id)
        if row is None:
            raise NotFound("No such API key.")
        await conn.execute(_SET_SECRET, key_id,
                           seal_signing_secret(app_secret, row["key_hash"], secret))
    fields = dict(row)
    del fields["key_hash"]
    return ApiKey(**fields), secret


_SIGNING_ROW = "SELECT key_hash, signing_secret FROM api_keys WHERE id = $1"

# First use: only a key that still has none gets one, so two processes agree on it.
_ISSUE_SECRET = """
UPDATE api_keys SET signing_secret = $2, signing_secret_at = now()
WHERE id = $1 AND signing_secret IS NULL
RETURNING signing_secret"""


async def callback_signing_key(
    conn: asyncpg.Connection | asyncpg.Pool, key_id: int, app_secret: str,
) -> bytes | None:
    """The HMAC key of the callbacks of messages sent with key ``key_id`` (None: no such key).

    It is the signing secret as UTF-8 bytes. Removed and expired keys still sign
    (their messages' reports keep coming). A key without a secret (created before
    migration 0380, or with :func:`create`) is given one now; its owner sees it by
    rotating it. Raises :class:`gateway.base.secretbox.Unreadable` when the stored
    secret was sealed under another secret key: rotating it is the cure.
    """
    row = await conn.fetchrow(_SIGNING_ROW, key_id)
    if row is None:
        return None
    sealed = row["signing_secret"]
    if sealed is None:
        fresh = seal_signing_secret(app_secret, row["key_hash"], generate_signing_secret())
        sealed = await conn.fetchval(_ISSUE_SECRET, key_id, fresh)
        if sealed is None:  # another process issued one first: use theirs
            sealed = await conn.fetchval("SELECT signing_secret FROM api_keys WHERE id = $1", key_id)
    return open_signing_secret(app_secret, row["key_hash"], sealed).encode()


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
