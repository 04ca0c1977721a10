"""Users of partners, as the admin panel manages them.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106). E-mail
addresses are unique per portal (case-insensitively, index in 0001_core.sql).
The role follows the partner's kind: owner admins for the system owner,
reseller admins for resellers, plain users for clients.
(Self sign-up and sign-in of the Campaign Portal live in portal.accounts.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from accounts.tenancy import VISIBLE, Conn, Scope, visible_partner
from config.errors import Conflict, Invalid, NotFound

Role = Literal["owner_admin", "reseller_admin", "user"]
ROLE_FOR_KIND: dict[str, Role] = {"owner": "owner_admin", "reseller": "reseller_admin", "client": "user"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (CPU-heavy: run it off the event loop in servers)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches the hash; False for a malformed hash too."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    partner_id: int
    portal_id: int
    email: str
    first_name: str
    last_name: str
    role: Role
    language: str
    theme: str
    totp_enabled: bool
    status: str
    custom_fields: dict[str, Any]
    created_at: datetime
    last_login_at: datetime | None


_COLUMNS = ", ".join(f"u.{f.name}" for f in fields(User))


def _user(row: asyncpg.Record) -> User:
    return User(**dict(row))


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    password: str
    first_name: str = ""
    last_name: str = ""
    language: str = "en"
    theme: str = "light"
    status: str = "active"
    custom_fields: dict[str, Any] | None = None


_INSERT = f"""
INSERT INTO users AS u (partner_id, portal_id, email, password_hash, first_name, last_name, role,
                        language, theme, status, custom_fields, email_confirmed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $10 = 'active' THEN now() END)
RETURNING {_COLUMNS}"""


async def create_user(conn: asyncpg.Connection, scope: Scope, partner_id: int, new: NewUser) -> User:
    """A user of a partner the scope can see; its role follows the partner's kind."""
    partner = await visible_partner(conn, scope, partner_id)
    email = new.email.strip()
    if not _EMAIL.match(email) or len(email) > 254:
        raise Invalid("not a valid e-mail address", field="email")
    if len(new.password) < 8:
        raise Invalid("the password needs at least 8 characters", field="password")
    if new.status not in ("pending", "active", "disabled"):
        raise Invalid("status must be pending, active or disabled", field="status")
    portal_id = await conn.fetchval("SELECT portal_id FROM partners WHERE id = $1", partner.id)
    password_hash = hash_password(new.password)
    try:
        async with conn.transaction():  # a savepoint: a Conflict leaves the caller's transaction usable
            row = await conn.fetchrow(
                _INSERT, partner.id, portal_id, email, password_hash, new.first_name, new.last_name,
                ROLE_FOR_KIND[partner.kind], new.language, new.theme, new.status, new.custom_fields or {},
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a user with this e-mail already exists on this portal", field="email") from exc
    except asyncpg.CheckViolationError as exc:
        raise Invalid(f"invalid value: {exc.constraint_name}") from exc
    return _user(row)


async def get_user(conn: Conn, scope: Scope, user_id: int) -> User:
    """A user of a partner the scope can see; NotFound otherwise."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM users u JOIN partners p ON p.id = u.partner_id
            WHERE u.id = $2 AND {VISIBLE}""",
        scope.partner_id, user_id,
    )
    if row is None:
        raise NotFound("no such user")
    return _user(row)


async def list_users(conn: Conn, scope: Scope, *, partner_id: int | None = None,
                     limit: int = 100, after_id: int = 0) -> list[User]:
    """Users in the scope's subtree (or of one partner in it), by id."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM users u JOIN partners p ON p.id = u.partner_id
            WHERE {VISIBLE} AND u.id > $2 AND ($3::bigint IS NULL OR u.partner_id = $3)
            ORDER BY u.id LIMIT $4""",
        scope.partner_id, after_id, partner_id, limit,
    )
    return [_user(r) for r in rows]


async def find_by_email(conn: Conn, portal_id: int, email: str) -> User | None:
    """The portal's user with this e-mail (any case), for sign-in; not tenant-scoped by nature."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM users u WHERE u.portal_id = $1 AND lower(u.email) = lower($2)",
        portal_id, email.strip(),
    )
    return _user(row) if row else None


async def authenticate(conn: Conn, portal_id: int, email: str, password: str) -> User | None:
    """The user when e-mail and password match on this portal, else None.

    A missing user still costs one hash verification, so timing does not tell
    which e-mail addresses exist.
    """
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS}, u.password_hash FROM users u
            WHERE u.portal_id = $1 AND lower(u.email) = lower($2)""",
        portal_id, email.strip(),
    )
    if row is None:
        verify_password(DUMMY_HASH, password)
        return None
    if not verify_password(row["password_hash"], password):
        return None
    values = dict(row)
    del values["password_hash"]
    return User(**values)


async def set_password(conn: Conn, scope: Scope, user_id: int, password: str) -> None:
    if len(password) < 8:
        raise Invalid("the password needs at least 8 characters", field="password")
    await get_user(conn, scope, user_id)
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, hash_password(password))


async def set_user_status(conn: Conn, scope: Scope, user_id: int, status: str) -> User:
    if status not in ("pending", "active", "disabled"):
        raise Invalid("status must be pending, active or disabled", field="status")
    await get_user(conn, scope, user_id)
    row = await conn.fetchrow(
        f"UPDATE users u SET status = $2 WHERE u.id = $1 RETURNING {_COLUMNS}", user_id, status
    )
    return _user(row)


async def set_totp_secret(conn: Conn, scope: Scope, user_id: int, secret: str | None) -> None:
    """Store (or clear, with None) a user's TOTP secret; enabling it is the caller's step."""
    await get_user(conn, scope, user_id)
    await conn.execute(
        "UPDATE users SET totp_secret = $2, totp_enabled = ($2 IS NOT NULL AND totp_enabled) WHERE id = $1",
        user_id, secret,
    )


# Verified against when an e-mail is unknown, so both paths cost one hash check and
# timing does not tell which addresses exist. Every sign-in path uses this one.
DUMMY_HASH = hash_password("herald-dummy-password")
