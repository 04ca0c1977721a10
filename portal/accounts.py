"""Portal users as the portal sees them: credentials, sign-up, profile and preferences.

An :class:`Account` is a user joined with the partner it acts for (balance,
currency, supervising partner's e-mail), loaded once per request. Password
hashing is billing's (argon2id, ``accounts.users``); here it runs in a worker
thread so that a sign-in never stalls the event loop. The end-user partner
created at sign-up is made by ``accounts.partners`` acting as the portal's owner.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from accounts import users as billing_users
from accounts.partners import NewPartner, create_partner
from accounts.tenancy import load_scope
from config.errors import Conflict, Invalid
from portal.i18n import N_
from portal.tenancy import Portal
from shortener.domains import HAS_SHORTENER

PASSWORD_MIN = 8
PASSWORD_MAX = 128
NAME_MAX = 100
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in user and the partner it acts for."""

    id: int
    partner_id: int
    portal_id: int
    email: str
    first_name: str
    last_name: str
    role: str
    language: str
    theme: str
    totp_secret: str | None
    totp_enabled: bool
    status: str
    custom_fields: dict[str, Any]
    ui_prefs: dict[str, Any]
    last_login_at: datetime | None
    partner_name: str
    partner_kind: str
    partner_status: str
    balance: Decimal
    credit_limit: Decimal
    currency: str
    supervisor_email: str
    has_shortener: bool = False  # the URL Shortener menu: a short domain, or short links to look at

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    @property
    def initials(self) -> str:
        letters = (self.first_name[:1] + self.last_name[:1]) or self.email[:1]
        return letters.upper()

    @property
    def is_admin(self) -> bool:
        return self.role in ("owner_admin", "reseller_admin")


_ACCOUNT = f"""
SELECT u.id, u.partner_id, u.portal_id, u.email, u.first_name, u.last_name, u.role, u.language,
       u.theme, u.totp_secret, u.totp_enabled, u.status, u.custom_fields, u.ui_prefs,
       u.last_login_at, p.name AS partner_name, p.kind AS partner_kind,
       p.status AS partner_status, p.balance, p.credit_limit, p.currency, p.supervisor_email,
       {HAS_SHORTENER} AS has_shortener
FROM users u JOIN partners p ON p.id = u.partner_id
WHERE u.id = $1"""


async def load(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> Account | None:
    row = await conn.fetchrow(_ACCOUNT, user_id)
    if row is None:
        return None
    values = dict(row)
    for key in ("custom_fields", "ui_prefs"):
        if isinstance(values[key], str):  # a connection without Herald's jsonb codec
            values[key] = json.loads(values[key])
    return Account(**values)


# Passwords

async def hash_password(password: str) -> str:
    return await asyncio.to_thread(billing_users.hash_password, password)


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(billing_users.verify_password, password_hash, password)


def validate_password(password: str, confirmation: str | None = None, *, field: str = "password") -> str:
    """The password if it meets the rules; :class:`Invalid` naming the field otherwise."""
    if len(password) < PASSWORD_MIN:
        raise Invalid(N_("Use at least 8 characters."), field=field)
    if len(password) > PASSWORD_MAX:
        raise Invalid(N_("Use at most 128 characters."), field=field)
    if confirmation is not None and confirmation != password:
        raise Invalid(N_("The passwords do not match."), field="password_confirm")
    return password


def normalise_email(email: str) -> str:
    """Trimmed e-mail address; :class:`Invalid` when it does not look like one."""
    email = (email or "").strip()
    if not _EMAIL.match(email) or len(email) > EMAIL_MAX:
        raise Invalid(N_("Enter a valid e-mail address."), field="email")
    return email


@dataclass(frozen=True, slots=True)
class Credentials:
    """Outcome of checking an e-mail and password."""

    user_id: int | None  # None: wrong e-mail or password
    status: str = ""
    language: str = "en"


_BY_EMAIL = """
SELECT u.id, u.password_hash, u.status, u.language, p.status AS partner_status
FROM users u JOIN partners p ON p.id = u.partner_id
WHERE u.portal_id = $1 AND lower(u.email) = lower($2)"""


async def check_credentials(
    conn: asyncpg.Connection | asyncpg.Pool, portal_id: int, email: str, password: str
) -> Credentials:
    """Whose e-mail and password these are, if anyone's; a status says if they may sign in.

    The status is 'active', 'pending' (e-mail not confirmed), 'disabled' (the
    user) or 'blocked' (the partner).
    """
    row = await conn.fetchrow(_BY_EMAIL, portal_id, email.strip())
    if row is None:
        await verify_password(billing_users.DUMMY_HASH, password)
        return Credentials(None)
    if not await verify_password(row["password_hash"], password):
        return Credentials(None)
    if billing_users.needs_rehash(row["password_hash"]):
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1", row["id"], await hash_password(password)
        )
    status = "blocked" if row["partner_status"] == "blocked" and row["status"] == "active" else row["status"]
    return Credentials(row["id"], status, row["language"])


find_by_email = billing_users.find_by_email


# Sign-up

@dataclass(frozen=True, slots=True)
class SignUp:
    first_name: str
    last_name: str
    company: str
    email: str
    password: str
    language: str
    custom_fields: dict[str, Any]
    consents: tuple[str, ...]  # 'terms', 'privacy', 'data_processing'


_NEW_USER = """
INSERT INTO users (partner_id, portal_id, email, password_hash, first_name, last_name, role,
                   language, status, custom_fields)
VALUES ($1, $2, $3, $4, $5, $6, 'user', $7, 'pending', $8)
RETURNING id"""


async def register(
    conn: asyncpg.Connection, portal: Portal, form: SignUp, *, remote_addr: str = ""
) -> int:
    """Create the end-user partner (a client of the portal's owner) and its pending user."""
    if portal.owner_partner_id is None:
        raise Invalid(N_("This portal does not accept sign-ups."))
    password_hash = await hash_password(form.password)
    async with conn.transaction():
        if await find_by_email(conn, portal.id, form.email):
            raise Conflict(N_("An account with this e-mail already exists."), field="email")
        owner = await load_scope(conn, portal.owner_partner_id)
        partner = await create_partner(conn, owner, owner.partner_id, NewPartner(
            kind="client", name=form.company, portal_id=portal.id, company_name=form.company,
            company_email=form.email,
        ))
        try:
            user_id = await conn.fetchval(
                _NEW_USER, partner.id, portal.id, form.email, password_hash, form.first_name,
                form.last_name, form.language, form.custom_fields,
            )
        except asyncpg.UniqueViolationError as exc:  # a concurrent sign-up with the same e-mail
            raise Conflict(N_("An account with this e-mail already exists."), field="email") from exc
        await conn.executemany(
            "INSERT INTO user_consents (user_id, kind, remote_addr) VALUES ($1, $2, $3)",
            [(user_id, kind, remote_addr) for kind in form.consents],
        )
    return user_id


async def activate(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> bool:
    """Mark a pending user's e-mail confirmed and the account active; False if not pending."""
    result = await conn.execute(
        "UPDATE users SET status = 'active', email_confirmed_at = now()"
        " WHERE id = $1 AND status = 'pending'",
        user_id,
    )
    return result.endswith(" 1")


# Profile and preferences

async def set_password(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, password: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, await hash_password(password)
    )


async def password_matches(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, password: str) -> bool:
    stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
    return stored is not None and await verify_password(stored, password)


async def update_profile(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, *, first_name: str, last_name: str,
    custom_fields: dict[str, Any],
) -> None:
    await conn.execute(
        "UPDATE users SET first_name = $2, last_name = $3, custom_fields = custom_fields || $4"
        " WHERE id = $1",
        user_id, first_name, last_name, custom_fields,
    )


async def set_language(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, language: str) -> None:
    await conn.execute("UPDATE users SET language = $2 WHERE id = $1", user_id, language)


async def set_theme(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, theme: str) -> None:
    await conn.execute("UPDATE users SET theme = $2 WHERE id = $1", user_id, theme)


async def set_totp(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, secret: str | None, enabled: bool
) -> None:
    await conn.execute(
        "UPDATE users SET totp_secret = $2, totp_enabled = $3 WHERE id = $1", user_id, secret, enabled
    )


async def touch_login(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)


_SET_UI_PREF = """
UPDATE users SET ui_prefs = ui_prefs || jsonb_build_object(
    $2::text, coalesce(ui_prefs -> $2::text, '{}'::jsonb) || jsonb_build_object($3::text, $4::jsonb))
WHERE id = $1"""


async def save_ui_pref(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, section: str, key: str, value: Any
) -> None:
    """Keep ``ui_prefs[section][key] = value`` (table column settings and the like)."""
    await conn.execute(_SET_UI_PREF, user_id, section, key, value)


# Custom registration fields of the contract company

@dataclass(frozen=True, slots=True)
class RegistrationField:
    id: int
    key: str
    label: str
    kind: str  # 'text', 'number', 'select'
    required: bool
    options: tuple[str, ...]
    max_length: int


async def registration_fields(
    conn: asyncpg.Connection | asyncpg.Pool, partner_id: int | None
) -> list[RegistrationField]:
    """The active custom sign-up fields of a contract company, in display order."""
    if partner_id is None:
        return []
    rows = await conn.fetch(
        "SELECT id, key, label, kind, required, options, max_length FROM registration_fields"
        " WHERE partner_id = $1 AND active ORDER BY position, id",
        partner_id,
    )
    return [RegistrationField(**{**dict(r), "options": tuple(r["options"])}) for r in rows]


async def contract_partner_id(conn: asyncpg.Connection | asyncpg.Pool, partner_id: int) -> int | None:
    """The partner whose registration fields apply to ``partner_id``'s users (its parent)."""
    return await conn.fetchval(
        "SELECT coalesce(parent_id, id) FROM partners WHERE id = $1", partner_id
    )
