"""Rate plans: per-network prices a partner sells to the partners directly below it.

A partner holds at most one active plan per traffic type (SMS, Viber
promotion, Viber transaction) — Campaign Portal guide, "Plan". A plan is
available to a partner when its seller is the partner's parent, it is not
archived, it is public or offered to that partner, its currency is the
partner's, and its kind fits the partner: reseller plans for resellers,
regular plans for clients.

Reseller plans ("Reseller plan" in the guide): a reseller exports the rates
of its own reseller plan as CSV, sets its prices and uploads the list as a
plan of its own with ``base_plan_id`` pointing at it. Rows the base plan does
not cover are refused (the reseller cannot sell what it cannot buy).
Resellers may price below their cost; :func:`below_cost` lists such rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

import asyncpg

from accounts.tenancy import Conn, Scope, managed_partner, visible_partner
from billing.pricing import Traffic
from billing.rates import RateRow, RateTable, parse_rates_csv, rates_to_csv
from billing.refbook import ImportReport, RejectedRow
from config.errors import Conflict, Forbidden, Invalid, NotFound

TRAFFICS: tuple[Traffic, ...] = ("sms", "viber_promotion", "viber_transaction")
BillingMode = Literal["submitted", "delivered"]


@dataclass(frozen=True, slots=True)
class RatePlan:
    id: int
    owner_partner_id: int
    name: str
    traffic: Traffic
    currency: str
    billing_mode: BillingMode
    for_resellers: bool
    public: bool
    base_plan_id: int | None
    description: str
    archived: bool
    revision: int
    created_at: datetime


_COLUMNS = ", ".join(f"r.{f.name}" for f in fields(RatePlan))


def _plan(row: asyncpg.Record) -> RatePlan:
    values = dict(row)
    values["currency"] = values["currency"].strip()
    return RatePlan(**values)


@dataclass(frozen=True, slots=True)
class NewPlan:
    name: str
    traffic: Traffic
    currency: str | None = None          # None: the seller's currency
    billing_mode: BillingMode = "submitted"
    for_resellers: bool = False
    public: bool = False
    base_plan_id: int | None = None      # a reseller plan the seller holds, for derived plans
    description: str = ""


# A plan the scope may read: its own, one sold by a partner below it, or one it may buy / holds.
_READABLE = """(
    EXISTS (SELECT 1 FROM partners o WHERE o.id = r.owner_partner_id AND $1 = ANY(o.path))
    OR EXISTS (SELECT 1 FROM partner_plans pp WHERE pp.plan_id = r.id AND pp.partner_id = $1)
    OR (r.owner_partner_id = (SELECT parent_id FROM partners WHERE id = $1) AND NOT r.archived
        AND (r.public OR EXISTS (SELECT 1 FROM plan_offers f WHERE f.plan_id = r.id AND f.partner_id = $1)))
)"""


async def get_plan(conn: Conn, scope: Scope, plan_id: int) -> RatePlan:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM rate_plans r WHERE r.id = $2 AND {_READABLE}",
                              scope.partner_id, plan_id)
    if row is None:
        raise NotFound("no such rate plan")
    return _plan(row)


async def _own_plan(conn: Conn, scope: Scope, plan_id: int) -> RatePlan:
    plan = await get_plan(conn, scope, plan_id)
    if plan.owner_partner_id != scope.partner_id:
        raise Forbidden("only the plan's seller may change it")
    return plan


async def list_own_plans(conn: Conn, scope: Scope, *, include_archived: bool = False) -> list[RatePlan]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM rate_plans r WHERE r.owner_partner_id = $1 AND ($2 OR NOT r.archived)
            ORDER BY r.id""",
        scope.partner_id, include_archived,
    )
    return [_plan(r) for r in rows]


async def rates_of(conn: Conn, scope: Scope, plan_id: int) -> list[RateRow]:
    await get_plan(conn, scope, plan_id)
    rows = await conn.fetch("SELECT mcc, mnc, price FROM plan_rates WHERE plan_id = $1 ORDER BY mcc, mnc", plan_id)
    return [RateRow(r["mcc"], r["mnc"], r["price"]) for r in rows]


async def _base_table(conn: Conn, scope: Scope, base_plan_id: int) -> tuple[RatePlan, RateTable]:
    """The reseller plan a derived plan builds on: one the seller holds or may buy."""
    base = await get_plan(conn, scope, base_plan_id)
    if not base.for_resellers or base.owner_partner_id == scope.partner_id:
        raise Invalid("the base must be a reseller plan sold to you by your parent", field="base_plan_id")
    return base, RateTable(await rates_of(conn, scope, base_plan_id))


async def create_plan(conn: asyncpg.Connection, scope: Scope, new: NewPlan,
                      rates: Sequence[RateRow] = ()) -> tuple[RatePlan, ImportReport]:
    """A plan sold by the acting partner; rows a derived plan's base does not cover are rejected."""
    if scope.kind == "client":
        raise Forbidden("clients do not sell rate plans")
    if new.traffic not in TRAFFICS:
        raise Invalid("unknown traffic type", field="traffic")
    if new.billing_mode not in ("submitted", "delivered"):
        raise Invalid("billing mode must be submitted or delivered", field="billing_mode")
    if not new.name.strip():
        raise Invalid("a plan needs a name", field="name")
    me = await visible_partner(conn, scope, scope.partner_id)
    currency = (new.currency or me.currency).upper()
    if new.base_plan_id is not None:
        base, _ = await _base_table(conn, scope, new.base_plan_id)
        if base.traffic != new.traffic:
            raise Invalid("the base plan is for another traffic type", field="base_plan_id")
        if base.currency != currency:
            raise Invalid("the base plan is in another currency", field="currency")
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO rate_plans AS r (owner_partner_id, name, traffic, currency, billing_mode,
                        for_resellers, public, base_plan_id, description)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}""",
                scope.partner_id, new.name.strip(), new.traffic, currency, new.billing_mode,
                new.for_resellers, new.public, new.base_plan_id, new.description,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("you already have a plan with this name", field="name") from exc
        plan = _plan(row)
        report = await _store_rates(conn, scope, plan, list(rates), [], replace=True)
    return await get_plan(conn, scope, plan.id), report


async def _store_rates(conn: asyncpg.Connection, scope: Scope, plan: RatePlan, rows: list[RateRow],
                       rejected: list[RejectedRow], *, replace: bool) -> ImportReport:
    if plan.base_plan_id is not None:
        _, base = await _base_table(conn, scope, plan.base_plan_id)
        kept = []
        for i, row in enumerate(rows):
            if base.covers(row):
                kept.append(row)
            else:
                rejected.append(RejectedRow(0, f"{row.label} is not covered by the base plan", f"row {i + 1}"))
        rows = kept
    async with conn.transaction():
        if replace:
            await conn.execute("DELETE FROM plan_rates WHERE plan_id = $1", plan.id)
        await conn.execute(
            """INSERT INTO plan_rates (plan_id, mcc, mnc, price)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::numeric[])
               ON CONFLICT (plan_id, mcc, mnc) DO UPDATE SET price = excluded.price""",
            plan.id, [r.mcc for r in rows], [r.mnc for r in rows], [r.price for r in rows],
        )
        await conn.execute("UPDATE rate_plans SET revision = revision + 1 WHERE id = $1", plan.id)
    return ImportReport(len(rows), tuple(rejected))


async def set_rates(conn: asyncpg.Connection, scope: Scope, plan_id: int, rows: Sequence[RateRow], *,
                    replace: bool = True) -> ImportReport:
    """Replace (or, with replace=False, upsert into) a plan's rates."""
    plan = await _own_plan(conn, scope, plan_id)
    return await _store_rates(conn, scope, plan, list(rows), [], replace=replace)


async def import_rates_csv(conn: asyncpg.Connection, scope: Scope, plan_id: int, text: str, *,
                           replace: bool = True) -> ImportReport:
    """Upload a CSV price list; bad rows come back with their line numbers and reasons."""
    plan = await _own_plan(conn, scope, plan_id)
    rows, rejected = parse_rates_csv(text)
    if plan.base_plan_id is not None:
        # keep line numbers for rows the base plan does not cover
        _, base = await _base_table(conn, scope, plan.base_plan_id)
        lines = _lines_of(text)
        for row in [r for r in rows if not base.covers(r)]:
            rejected.append(RejectedRow(lines.get((row.mcc, row.mnc), 0),
                                        f"{row.label} is not covered by the base plan", ""))
        rows = [r for r in rows if base.covers(r)]
        rejected.sort(key=lambda r: r.line)
    return await _store_rates(conn, scope, plan, rows, rejected, replace=replace)


def _lines_of(text: str) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        cells = [c.strip() for c in line.split(",")]
        if number > 1 and len(cells) >= 2:
            found.setdefault((cells[0], cells[1] or "*"), number)
    return found


async def export_rates_csv(conn: Conn, scope: Scope, plan_id: int) -> str:
    """The plan's price list as CSV (its seller, partners above, and partners that hold or may buy it)."""
    return rates_to_csv(await rates_of(conn, scope, plan_id))


async def below_cost(conn: Conn, scope: Scope, plan_id: int) -> list[tuple[RateRow, RateRow]]:
    """(derived row, base row) pairs where a derived plan sells below what its seller pays."""
    plan = await get_plan(conn, scope, plan_id)
    if plan.base_plan_id is None:
        return []
    _, base = await _base_table(conn, scope, plan.base_plan_id)
    out = []
    for row in await rates_of(conn, scope, plan_id):
        cost = base.rate_for(row.mcc, None if row.mnc == "*" else row.mnc)
        if cost is not None and row.price < cost:
            out.append((row, RateRow(row.mcc, row.mnc, cost)))
    return out


async def update_plan(conn: Conn, scope: Scope, plan_id: int, *, name: str | None = None,
                      public: bool | None = None, archived: bool | None = None,
                      description: str | None = None) -> RatePlan:
    await _own_plan(conn, scope, plan_id)
    row = await conn.fetchrow(
        f"""UPDATE rate_plans r SET name = coalesce($2, r.name), public = coalesce($3, r.public),
                archived = coalesce($4, r.archived), description = coalesce($5, r.description)
            WHERE r.id = $1 RETURNING {_COLUMNS}""",
        plan_id, name, public, archived, description,
    )
    return _plan(row)


async def offer_plan(conn: Conn, scope: Scope, plan_id: int, partner_id: int) -> None:
    """Make one of the scope's plans available to a partner directly below it."""
    await _own_plan(conn, scope, plan_id)
    partner = await managed_partner(conn, scope, partner_id)
    if partner.parent_id != scope.partner_id:
        raise Invalid("plans are offered to the partners directly below you", field="partner_id")
    await conn.execute("INSERT INTO plan_offers (plan_id, partner_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       plan_id, partner_id)


async def withdraw_offer(conn: Conn, scope: Scope, plan_id: int, partner_id: int) -> None:
    await _own_plan(conn, scope, plan_id)
    await conn.execute("DELETE FROM plan_offers WHERE plan_id = $1 AND partner_id = $2", plan_id, partner_id)


_AVAILABLE = f"""
SELECT {_COLUMNS} FROM rate_plans r JOIN partners p ON p.id = $1
WHERE r.owner_partner_id = p.parent_id AND NOT r.archived AND r.currency = p.currency
  AND r.for_resellers = (p.kind = 'reseller')
  AND (r.public OR EXISTS (SELECT 1 FROM plan_offers f WHERE f.plan_id = r.id AND f.partner_id = p.id))"""


async def available_plans(conn: Conn, scope: Scope, partner_id: int) -> list[RatePlan]:
    """Plans the partner may subscribe to (the Purchase screen's Rate Plans tab)."""
    await visible_partner(conn, scope, partner_id)
    rows = await conn.fetch(_AVAILABLE + " ORDER BY r.id", partner_id)
    return [_plan(r) for r in rows]


async def subscribe(conn: Conn, scope: Scope, partner_id: int, plan_id: int) -> RatePlan:
    """Make ``plan_id`` the partner's active plan for its traffic type (replacing the previous one).

    The partner itself (the Purchase screen) or a partner above it (the
    admin panel) may do it; the plan must be available to the partner.
    """
    await visible_partner(conn, scope, partner_id)
    row = await conn.fetchrow(_AVAILABLE + " AND r.id = $2", partner_id, plan_id)
    if row is None:
        raise NotFound("this plan is not available to this partner")
    plan = _plan(row)
    await conn.execute(
        """INSERT INTO partner_plans (partner_id, traffic, plan_id) VALUES ($1, $2, $3)
           ON CONFLICT (partner_id, traffic) DO UPDATE SET plan_id = excluded.plan_id, since = now()""",
        partner_id, plan.traffic, plan.id,
    )
    return plan


async def unsubscribe(conn: Conn, scope: Scope, partner_id: int, traffic: Traffic) -> bool:
    """End a partner's plan for a traffic type; only a partner above it may (guide §9)."""
    await managed_partner(conn, scope, partner_id)
    result = await conn.execute("DELETE FROM partner_plans WHERE partner_id = $1 AND traffic = $2",
                                partner_id, traffic)
    return result != "DELETE 0"


async def active_plans(conn: Conn, scope: Scope, partner_id: int) -> dict[str, RatePlan]:
    """The partner's active plan per traffic type."""
    await visible_partner(conn, scope, partner_id)
    rows = await conn.fetch(
        f"""SELECT pp.traffic AS active_traffic, {_COLUMNS} FROM partner_plans pp
            JOIN rate_plans r ON r.id = pp.plan_id WHERE pp.partner_id = $1""",
        partner_id,
    )
    out = {}
    for r in rows:
        values = dict(r)
        traffic = values.pop("active_traffic")
        values["currency"] = values["currency"].strip()
        out[traffic] = RatePlan(**values)
    return out
