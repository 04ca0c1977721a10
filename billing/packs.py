"""Message packs: a number of messages bought once, used before the rate plan.

A pack (Campaign Portal guide §9, "Pack") has a channel, the countries it
covers (none listed: any destination), a message count, a price, a cost per
message, a billing mode, a window during which it can be bought and a
validity counted from the purchase. Buying one debits the balance
(``pack_purchase`` in the ledger) and creates a subscription holding the
remaining count. A partner may hold several packs per channel; pricing takes
from the one expiring first (billing.pricing).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

import asyncpg

from accounts.tenancy import Conn, Scope, managed_partner, visible_partner
from billing.ledger import post
from billing.mcc import MCCS_BY_COUNTRY, mccs_for_countries
from config.errors import Conflict, Forbidden, Invalid, NotFound

BillingMode = Literal["submitted", "delivered"]


@dataclass(frozen=True, slots=True)
class Pack:
    id: int
    owner_partner_id: int
    name: str
    channel: str
    countries: tuple[str, ...]
    message_count: int
    price: Decimal
    currency: str
    cost_per_message: Decimal
    billing_mode: BillingMode
    available_from: datetime | None
    available_until: datetime | None
    validity_days: int
    public: bool
    archived: bool
    created_at: datetime


_COLUMNS = ", ".join(f"k.{f.name}" for f in fields(Pack))


def _pack(row: asyncpg.Record) -> Pack:
    values = dict(row)
    values["countries"] = tuple(values["countries"])
    values["currency"] = values["currency"].strip()
    return Pack(**values)


@dataclass(frozen=True, slots=True)
class NewPack:
    name: str
    channel: str
    message_count: int
    price: Decimal
    validity_days: int
    countries: tuple[str, ...] = ()
    currency: str | None = None
    cost_per_message: Decimal | None = None   # None: price / message_count
    billing_mode: BillingMode = "submitted"
    available_from: datetime | None = None
    available_until: datetime | None = None
    public: bool = False


async def create_pack(conn: asyncpg.Connection, scope: Scope, new: NewPack) -> Pack:
    """A pack sold by the acting partner (system owner or reseller) to the partners below it."""
    if scope.kind == "client":
        raise Forbidden("clients do not sell packs")
    if new.channel not in ("sms", "viber"):
        raise Invalid("channel must be sms or viber", field="channel")
    if new.message_count < 1:
        raise Invalid("a pack holds at least one message", field="message_count")
    if new.price < 0:
        raise Invalid("the price cannot be negative", field="price")
    if new.validity_days < 1:
        raise Invalid("validity is at least one day", field="validity_days")
    if new.billing_mode not in ("submitted", "delivered"):
        raise Invalid("billing mode must be submitted or delivered", field="billing_mode")
    countries = tuple(dict.fromkeys(c.upper() for c in new.countries))
    unknown = [c for c in countries if c not in MCCS_BY_COUNTRY]
    if unknown:
        raise Invalid(f"unknown country codes: {', '.join(unknown)}", field="countries")
    if new.available_from and new.available_until and new.available_until <= new.available_from:
        raise Invalid("the sales window ends before it starts", field="available_until")
    me = await visible_partner(conn, scope, scope.partner_id)
    cost = new.cost_per_message
    if cost is None:
        cost = (new.price / new.message_count).quantize(Decimal("0.000001"))
    try:
        async with conn.transaction():  # a savepoint: a Conflict leaves the caller's transaction usable
            row = await conn.fetchrow(
                f"""INSERT INTO packs AS k (owner_partner_id, name, channel, countries, message_count, price,
                        currency, cost_per_message, billing_mode, available_from, available_until,
                        validity_days, public)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {_COLUMNS}""",
                scope.partner_id, new.name.strip(), new.channel, list(countries), new.message_count, new.price,
                (new.currency or me.currency).upper(), cost, new.billing_mode, new.available_from,
                new.available_until, new.validity_days, new.public,
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("you already have a pack with this name", field="name") from exc
    return _pack(row)


async def get_pack(conn: Conn, scope: Scope, pack_id: int) -> Pack:
    """A pack sold by the scope or below it, or one the scope may buy."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM packs k WHERE k.id = $2 AND (
                EXISTS (SELECT 1 FROM partners o WHERE o.id = k.owner_partner_id AND $1 = ANY(o.path))
                OR (k.owner_partner_id = (SELECT parent_id FROM partners WHERE id = $1)
                    AND (k.public OR EXISTS (SELECT 1 FROM pack_offers f
                                             WHERE f.pack_id = k.id AND f.partner_id = $1))))""",
        scope.partner_id, pack_id,
    )
    if row is None:
        raise NotFound("no such pack")
    return _pack(row)


async def list_own_packs(conn: Conn, scope: Scope) -> list[Pack]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM packs k WHERE k.owner_partner_id = $1 ORDER BY k.id",
                            scope.partner_id)
    return [_pack(r) for r in rows]


async def offer_pack(conn: Conn, scope: Scope, pack_id: int, partner_id: int) -> None:
    """Make one of the scope's packs available to a partner directly below it."""
    pack = await get_pack(conn, scope, pack_id)
    if pack.owner_partner_id != scope.partner_id:
        raise Forbidden("only the pack's seller may offer it")
    partner = await managed_partner(conn, scope, partner_id)
    if partner.parent_id != scope.partner_id:
        raise Invalid("packs are offered to the partners directly below you", field="partner_id")
    await conn.execute("INSERT INTO pack_offers (pack_id, partner_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       pack_id, partner_id)


async def archive_pack(conn: Conn, scope: Scope, pack_id: int) -> None:
    """Stop selling a pack; subscriptions already bought keep working."""
    pack = await get_pack(conn, scope, pack_id)
    if pack.owner_partner_id != scope.partner_id:
        raise Forbidden("only the pack's seller may archive it")
    await conn.execute("UPDATE packs SET archived = true WHERE id = $1", pack_id)


_AVAILABLE = f"""
SELECT {_COLUMNS} FROM packs k JOIN partners p ON p.id = $1
WHERE k.owner_partner_id = p.parent_id AND NOT k.archived AND k.currency = p.currency
  AND (k.available_from IS NULL OR k.available_from <= $2)
  AND (k.available_until IS NULL OR k.available_until > $2)
  AND (k.public OR EXISTS (SELECT 1 FROM pack_offers f WHERE f.pack_id = k.id AND f.partner_id = p.id))"""


async def available_packs(conn: Conn, scope: Scope, partner_id: int, now: datetime) -> list[Pack]:
    """Packs the partner may buy at ``now`` (the Purchase screen's Message Packs tab)."""
    await visible_partner(conn, scope, partner_id)
    rows = await conn.fetch(_AVAILABLE + " ORDER BY k.id", partner_id, now)
    return [_pack(r) for r in rows]


@dataclass(frozen=True, slots=True)
class PackSubscription:
    id: int
    partner_id: int
    pack_id: int
    channel: str
    mccs: tuple[str, ...]
    total: int
    remaining: int
    price: Decimal
    cost_per_message: Decimal
    billing_mode: BillingMode
    purchased_at: datetime
    expires_at: datetime
    canceled_at: datetime | None
    transaction_id: int | None


_SUB_COLUMNS = ", ".join(f"s.{f.name}" for f in fields(PackSubscription))


def _sub(row: asyncpg.Record) -> PackSubscription:
    values = dict(row)
    values["mccs"] = tuple(values["mccs"])
    return PackSubscription(**values)


async def purchase_pack(conn: asyncpg.Connection, scope: Scope, partner_id: int, pack_id: int,
                        now: datetime) -> PackSubscription:
    """Buy a pack for ``partner_id``: debit its price and hold its messages until expiry.

    Raises InsufficientBalance (nothing changes) when balance plus credit
    limit do not cover the price; NotFound when the pack is not for sale to
    this partner at ``now``.
    """
    await visible_partner(conn, scope, partner_id)
    row = await conn.fetchrow(_AVAILABLE + " AND k.id = $3", partner_id, now, pack_id)
    if row is None:
        raise NotFound("this pack is not for sale to this partner now")
    pack = _pack(row)
    async with conn.transaction():
        tx = await post(conn, partner_id, -pack.price, type="pack_purchase", user_id=scope.user_id,
                        description=f"pack {pack.name}")
        sub = await conn.fetchrow(
            f"""INSERT INTO pack_subscriptions AS s (partner_id, pack_id, channel, mccs, total, remaining,
                    price, cost_per_message, billing_mode, purchased_at, expires_at, transaction_id)
                VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11) RETURNING {_SUB_COLUMNS}""",
            partner_id, pack.id, pack.channel, mccs_for_countries(pack.countries), pack.message_count,
            pack.price, pack.cost_per_message, pack.billing_mode, now,
            now + timedelta(days=pack.validity_days), tx.id,
        )
    return _sub(sub)


async def subscriptions(conn: Conn, scope: Scope, partner_id: int, *, live_at: datetime | None = None
                        ) -> list[PackSubscription]:
    """The partner's packs, first to expire first; ``live_at`` keeps those usable at that time."""
    await visible_partner(conn, scope, partner_id)
    rows = await conn.fetch(
        f"""SELECT {_SUB_COLUMNS} FROM pack_subscriptions s WHERE s.partner_id = $1
              AND ($2::timestamptz IS NULL OR (s.expires_at > $2 AND s.remaining > 0 AND s.canceled_at IS NULL))
            ORDER BY s.expires_at, s.id""",
        partner_id, live_at,
    )
    return [_sub(r) for r in rows]


async def cancel_subscription(conn: asyncpg.Connection, scope: Scope, subscription_id: int) -> None:
    """A partner above ends a pack subscription (guide §9: users cannot unsubscribe themselves).

    The partner's row is locked first, as charging does, so a batch being
    charged never sees the pack vanish half-way.
    """
    partner_id = await conn.fetchval("SELECT partner_id FROM pack_subscriptions WHERE id = $1", subscription_id)
    if partner_id is None:
        raise NotFound("no such pack subscription")
    await managed_partner(conn, scope, partner_id)
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM partners WHERE id = $1 FOR UPDATE", partner_id)
        await conn.execute("UPDATE pack_subscriptions SET canceled_at = now() WHERE id = $1 AND canceled_at IS NULL",
                           subscription_id)
