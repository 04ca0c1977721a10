"""Tenant scoping: every query of tenant data runs as some partner.

A :class:`Scope` is the acting partner (and user). A partner sees itself and
its whole subtree: in SQL that is ``$1 = ANY(p.path)``, because ``path`` holds
every ancestor of a partner including itself (0001_core.sql). By convention
``$1`` of every scoped statement is the acting partner's id, so

    await fetch_scoped(conn, scope, f"SELECT ... FROM sender_ids s"
                       f" JOIN partners p ON p.id = s.partner_id WHERE {VISIBLE} AND s.id = $2", sid)

is the easy way to write a query, and the public functions of billing take the
scope first so that an unscoped call cannot be written by accident. Objects
of other tenants are answered with :class:`NotFound`, exactly like objects
that do not exist, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from config.errors import Forbidden, NotFound

PartnerKind = Literal["owner", "reseller", "client"]

#: SQL fragment: partner row ``p`` is inside the acting partner's subtree ($1).
VISIBLE = "$1 = ANY(p.path)"
#: SQL fragment: partner row ``p`` is strictly below the acting partner ($1).
MANAGED = "($1 = ANY(p.path) AND p.id <> $1)"

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True, slots=True)
class Scope:
    """Who is acting: a partner and, when a person acts, one of its users."""

    partner_id: int
    kind: PartnerKind
    user_id: int | None = None

    @property
    def is_owner(self) -> bool:
        return self.kind == "owner"

    def can_see(self, path: str = "p.path", param: int = 1) -> str:
        """SQL condition: the partner with ancestor array ``path`` is visible to this scope."""
        return f"${param} = ANY({path})"


async def load_scope(conn: Conn, partner_id: int, user_id: int | None = None) -> Scope:
    """The scope of a partner (and user); NotFound when the partner does not exist."""
    kind = await conn.fetchval("SELECT kind FROM partners WHERE id = $1", partner_id)
    if kind is None:
        raise NotFound("no such partner")
    return Scope(partner_id, kind, user_id)


async def owner_scope(conn: Conn) -> Scope:
    """The system owner's scope (for internal jobs acting on behalf of the platform)."""
    owner_id = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    if owner_id is None:
        raise NotFound("the system owner does not exist yet")
    return Scope(owner_id, "owner")


async def fetch_scoped(conn: Conn, scope: Scope, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run a scoped query: ``$1`` is bound to the acting partner, ``args`` follow from ``$2``."""
    return await conn.fetch(sql, scope.partner_id, *args)


async def fetchrow_scoped(conn: Conn, scope: Scope, sql: str, *args: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(sql, scope.partner_id, *args)


async def fetchval_scoped(conn: Conn, scope: Scope, sql: str, *args: Any) -> Any:
    return await conn.fetchval(sql, scope.partner_id, *args)


@dataclass(frozen=True, slots=True)
class PartnerRef:
    """The few facts about a partner that rules need."""

    id: int
    parent_id: int | None
    kind: PartnerKind
    path: tuple[int, ...]
    currency: str
    status: str


_REF = f"""SELECT p.id, p.parent_id, p.kind, p.path, p.currency, p.status
FROM partners p WHERE p.id = $2 AND {VISIBLE}"""


async def visible_partner(conn: Conn, scope: Scope, partner_id: int) -> PartnerRef:
    """The partner if the scope may see it (itself or its subtree); NotFound otherwise."""
    row = await conn.fetchrow(_REF, scope.partner_id, partner_id)
    if row is None:
        raise NotFound("no such partner")
    return PartnerRef(row["id"], row["parent_id"], row["kind"], tuple(row["path"]),
                      row["currency"].strip(), row["status"])


async def managed_partner(conn: Conn, scope: Scope, partner_id: int) -> PartnerRef:
    """The partner if it is strictly below the scope (the scope manages it).

    NotFound for partners out of sight, Forbidden for the scope's own partner:
    nobody tops up, approves for or unsubscribes itself.
    """
    ref = await visible_partner(conn, scope, partner_id)
    if ref.id == scope.partner_id:
        raise Forbidden("a partner cannot manage itself; its parent does")
    return ref


def require_owner(scope: Scope) -> None:
    """Only the system owner may do this (vendors, the reference book)."""
    if not scope.is_owner:
        raise Forbidden("only the system owner may do this")
