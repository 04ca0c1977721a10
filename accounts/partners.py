"""The partner tree: system owner → resellers (any depth) → clients (end users).

Rules (Campaign Portal guide, "Partner"): the owner is the single root;
resellers may have resellers and clients below them; clients have no
children. A partner's portal must belong to a partner on its own chain
(the portal's owner is the new partner's parent or an ancestor), so a
reseller's clients are served by the reseller's white-label portal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from accounts.tenancy import (
    MANAGED,
    VISIBLE,
    Conn,
    PartnerKind,
    Scope,
    managed_partner,
    visible_partner,
)
from config.errors import Conflict, Invalid, NotFound

_CURRENCY = re.compile(r"^[A-Z]{3}$")
CHILD_KINDS: dict[str, tuple[str, ...]] = {
    "owner": ("reseller", "client"),
    "reseller": ("reseller", "client"),
    "client": (),
}


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    parent_id: int | None
    path: tuple[int, ...]
    kind: PartnerKind
    name: str
    portal_id: int
    company_name: str
    company_address: str
    company_reg_no: str
    company_vat_no: str
    company_email: str
    currency: str
    balance: Decimal
    credit_limit: Decimal
    mo_enabled: bool
    allow_signup: bool
    status: str
    supervisor_email: str
    created_at: datetime

    @property
    def depth(self) -> int:
        """0 for the owner, 1 for partners directly below it, and so on."""
        return len(self.path) - 1

    @property
    def available(self) -> Decimal:
        """What the partner can still spend: balance plus credit limit."""
        return self.balance + self.credit_limit


_COLUMNS = ", ".join(f"p.{f.name}" for f in fields(Partner))


def _partner(row: asyncpg.Record) -> Partner:
    values = dict(row)
    values["path"] = tuple(values["path"])
    values["currency"] = values["currency"].strip()
    return Partner(**values)


@dataclass(frozen=True, slots=True)
class NewPartner:
    """What the admin panel fills in to create a partner."""

    kind: PartnerKind
    name: str
    portal_id: int | None = None          # None: the parent's portal
    currency: str | None = None           # None: the parent's currency
    company_name: str = ""
    company_address: str = ""
    company_reg_no: str = ""
    company_vat_no: str = ""
    company_email: str = ""
    credit_limit: Decimal = Decimal(0)
    mo_enabled: bool = False
    allow_signup: bool = False
    supervisor_email: str = ""


_INSERT = f"""
INSERT INTO partners AS p (parent_id, kind, name, portal_id, currency, company_name, company_address,
    company_reg_no, company_vat_no, company_email, credit_limit, mo_enabled, allow_signup,
    supervisor_email)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING {_COLUMNS}"""


async def create_partner(conn: asyncpg.Connection, scope: Scope, parent_id: int, new: NewPartner) -> Partner:
    """Create a reseller or client under ``parent_id`` (which the scope must see)."""
    parent = await visible_partner(conn, scope, parent_id)
    if new.kind not in CHILD_KINDS[parent.kind]:
        raise Invalid(f"a {parent.kind} cannot have a {new.kind} below it", field="kind")
    name = new.name.strip()
    if not name:
        raise Invalid("a partner needs a name", field="name")
    currency = (new.currency or parent.currency).upper()
    if not _CURRENCY.match(currency):
        raise Invalid("currency must be a 3-letter ISO 4217 code", field="currency")
    if new.credit_limit < 0:
        raise Invalid("the credit limit cannot be negative", field="credit_limit")
    portal_id = new.portal_id
    if portal_id is None:
        portal_id = await conn.fetchval("SELECT portal_id FROM partners WHERE id = $1", parent.id)
    else:
        portal_owner = await conn.fetchval("SELECT owner_partner_id FROM portals WHERE id = $1", portal_id)
        if portal_owner is None or portal_owner not in parent.path:
            raise Invalid("the portal must belong to the parent or a partner above it", field="portal_id")
    row = await conn.fetchrow(
        _INSERT, parent.id, new.kind, name, portal_id, currency, new.company_name or name,
        new.company_address, new.company_reg_no, new.company_vat_no, new.company_email,
        new.credit_limit, new.mo_enabled, new.allow_signup, new.supervisor_email,
    )
    return _partner(row)


async def get_partner(conn: Conn, scope: Scope, partner_id: int) -> Partner:
    """A partner the scope can see (itself or below); NotFound otherwise."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM partners p WHERE p.id = $2 AND {VISIBLE}", scope.partner_id, partner_id
    )
    if row is None:
        raise NotFound("no such partner")
    return _partner(row)


async def list_partners(
    conn: Conn, scope: Scope, *, parent_id: int | None = None, kind: PartnerKind | None = None,
    search: str = "", limit: int = 100, after_id: int = 0,
) -> list[Partner]:
    """Partners below the scope (the whole subtree, or the children of ``parent_id``), by id."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM partners p
            WHERE {MANAGED} AND p.id > $2
              AND ($3::bigint IS NULL OR p.parent_id = $3)
              AND ($4::text IS NULL OR p.kind = $4)
              AND ($5 = '' OR p.name ILIKE '%' || $5 || '%' OR p.company_name ILIKE '%' || $5 || '%')
            ORDER BY p.id LIMIT $6""",
        scope.partner_id, after_id, parent_id, kind, search, limit,
    )
    return [_partner(r) for r in rows]


_EDITABLE = {
    "name", "company_name", "company_address", "company_reg_no", "company_vat_no", "company_email",
    "mo_enabled", "allow_signup", "supervisor_email",
}


async def update_partner(conn: Conn, scope: Scope, partner_id: int, **changes: Any) -> Partner:
    """Change descriptive fields and options (see ``_EDITABLE``) of a visible partner."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    await visible_partner(conn, scope, partner_id)
    if not changes:
        return await get_partner(conn, scope, partner_id)
    names = sorted(changes)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    row = await conn.fetchrow(
        f"UPDATE partners p SET {sets} WHERE p.id = $1 RETURNING {_COLUMNS}",
        partner_id, *[changes[n] for n in names],
    )
    return _partner(row)


async def set_status(conn: Conn, scope: Scope, partner_id: int, status: str) -> Partner:
    """Block or unblock a partner below the scope. A blocked partner's traffic is refused."""
    if status not in ("active", "blocked"):
        raise Invalid("status must be active or blocked", field="status")
    await managed_partner(conn, scope, partner_id)
    row = await conn.fetchrow(
        f"UPDATE partners p SET status = $2 WHERE p.id = $1 RETURNING {_COLUMNS}", partner_id, status
    )
    return _partner(row)


async def set_credit_limit(conn: asyncpg.Connection, scope: Scope, partner_id: int, limit: Decimal) -> Partner:
    """Set how far below zero a partner may go; only a partner above it may."""
    if limit < 0:
        raise Invalid("the credit limit cannot be negative", field="credit_limit")
    await managed_partner(conn, scope, partner_id)
    try:
        async with conn.transaction():  # a savepoint: a Conflict leaves the caller's transaction usable
            row = await conn.fetchrow(
                f"UPDATE partners p SET credit_limit = $2 WHERE p.id = $1 RETURNING {_COLUMNS}",
                partner_id, limit,
            )
    except asyncpg.CheckViolationError as exc:
        raise Conflict("the balance is already below that credit limit", field="credit_limit") from exc
    return _partner(row)
