"""The ledger: balance changes other than traffic, the finance views, and margins.

Every change of a balance is one ``transactions`` row written by the same
statement that changes the balance (traffic is written by
:mod:`billing.charging`, in batches). Amounts are signed: negative is money
leaving the partner's balance. Types (Campaign Portal guide §11): campaign,
pack_purchase, topup, payment, api, mo_reply, refund, smpp.

Balance = sum of a partner's transaction amounts, always: tests hold the
code to it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

import asyncpg

from accounts.tenancy import VISIBLE, Conn, Scope, managed_partner, visible_partner
from billing.errors import InsufficientBalance
from billing.mcc import COUNTRIES_BY_MCC
from config.errors import Invalid, NotFound

TRANSACTION_TYPES = ("campaign", "pack_purchase", "topup", "payment", "api", "mo_reply", "refund", "smpp")
TRAFFIC_TYPES = ("campaign", "api", "mo_reply", "smpp", "refund")


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    partner_id: int
    counterparty_id: int | None
    origin_partner_id: int | None
    user_id: int | None
    type: str
    amount: Decimal
    currency: str
    messages: int
    pack_messages: int
    description: str
    created_at: datetime


_COLUMNS = ", ".join(f"t.{f.name}" for f in fields(Transaction))


def _tx(row: asyncpg.Record) -> Transaction:
    values = dict(row)
    values["currency"] = values["currency"].strip()
    return Transaction(**values)


_POST = f"""
WITH upd AS (
    UPDATE partners SET balance = balance + $2
    WHERE id = $1 AND balance + $2 >= -credit_limit
    RETURNING id, parent_id, currency
)
INSERT INTO transactions AS t (partner_id, counterparty_id, user_id, type, amount, currency, description)
SELECT id, coalesce($6, parent_id), $3, $4, $2, currency, $5 FROM upd
RETURNING {_COLUMNS}"""


async def post(
    conn: Conn, partner_id: int, amount: Decimal, *, type: str, user_id: int | None,
    description: str, counterparty_id: int | None = None,
) -> Transaction:
    """Move a balance by ``amount`` (negative: a debit) and write its ledger row, in one statement.

    A debit beyond balance plus credit limit raises InsufficientBalance and
    changes nothing. Building block for top-ups, payments and pack purchases.
    """
    if type not in TRANSACTION_TYPES:
        raise Invalid(f"unknown transaction type {type!r}")
    row = await conn.fetchrow(_POST, partner_id, amount, user_id, type, description, counterparty_id)
    if row is None:
        if await conn.fetchval("SELECT 1 FROM partners WHERE id = $1", partner_id) is None:
            raise NotFound("no such partner")
        raise InsufficientBalance("insufficient balance")
    return _tx(row)


async def adjust_balance(
    conn: Conn, scope: Scope, partner_id: int, amount: Decimal, *, type: str = "topup",
    description: str = "",
) -> Transaction:
    """A partner above tops up (or corrects, with a negative amount) a partner's balance."""
    if type not in ("topup", "payment"):
        raise Invalid("type must be topup or payment", field="type")
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount == 0:
        raise Invalid("the amount must be a non-zero decimal", field="amount")
    if amount != amount.quantize(Decimal("0.000001")):
        raise Invalid("the amount has more than 6 decimal places", field="amount")
    await managed_partner(conn, scope, partner_id)
    return await post(conn, partner_id, amount, type=type, user_id=scope.user_id,
                      description=description or ("balance top-up" if type == "topup" else "payment"),
                      counterparty_id=scope.partner_id)


@dataclass(frozen=True, slots=True)
class Balance:
    balance: Decimal
    credit_limit: Decimal
    currency: str

    @property
    def available(self) -> Decimal:
        return self.balance + self.credit_limit


async def balance_of(conn: Conn, scope: Scope, partner_id: int) -> Balance:
    await visible_partner(conn, scope, partner_id)
    row = await conn.fetchrow("SELECT balance, credit_limit, currency FROM partners WHERE id = $1", partner_id)
    return Balance(row["balance"], row["credit_limit"], row["currency"].strip())


async def list_transactions(
    conn: Conn, scope: Scope, partner_id: int, *, types: tuple[str, ...] | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int = 50,
    before_id: int | None = None,
) -> list[Transaction]:
    """A partner's ledger, newest first; page with ``before_id`` = the last id seen."""
    await visible_partner(conn, scope, partner_id)
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM transactions t
            WHERE t.partner_id = $1 AND ($2::text[] IS NULL OR t.type = ANY($2))
              AND ($3::timestamptz IS NULL OR t.created_at >= $3)
              AND ($4::timestamptz IS NULL OR t.created_at < $4)
              AND ($5::bigint IS NULL OR t.id < $5)
            ORDER BY t.id DESC LIMIT $6""",
        partner_id, list(types) if types else None, since, until, before_id, limit,
    )
    return [_tx(r) for r in rows]


async def count_transactions(conn: Conn, scope: Scope, partner_id: int, *,
                             types: tuple[str, ...] | None = None) -> int:
    await visible_partner(conn, scope, partner_id)
    return await conn.fetchval(
        "SELECT count(*) FROM transactions WHERE partner_id = $1 AND ($2::text[] IS NULL OR type = ANY($2))",
        partner_id, list(types) if types else None,
    )


@dataclass(frozen=True, slots=True)
class Detail:
    """One MCCMNC line of a traffic transaction (Campaign Portal guide §11, transaction details)."""

    mccmnc: str
    country: str
    network: str
    messages: int
    parts: int
    pack_parts: int
    rate: Decimal | None
    total: Decimal


async def transaction_details(conn: Conn, scope: Scope, transaction_id: int) -> list[Detail]:
    """The per-MCCMNC lines of a transaction the scope can see, with country and network names."""
    owner = await conn.fetchval(
        f"""SELECT t.partner_id FROM transactions t JOIN partners p ON p.id = t.partner_id
            WHERE t.id = $2 AND {VISIBLE}""",
        scope.partner_id, transaction_id,
    )
    if owner is None:
        raise NotFound("no such transaction")
    rows = await conn.fetch(
        """SELECT d.mccmnc, d.messages, d.parts, d.pack_parts, d.rate, d.total,
                  (SELECT n.network FROM number_prefixes n
                   WHERE n.mcc = left(d.mccmnc, 3) AND n.mnc = nullif(substr(d.mccmnc, 4), '')
                     AND n.network <> '' LIMIT 1) AS network
           FROM transaction_details d WHERE d.transaction_id = $1 ORDER BY d.mccmnc, d.rate""",
        transaction_id,
    )
    return [
        Detail(r["mccmnc"], "/".join(COUNTRIES_BY_MCC.get(r["mccmnc"][:3], ())), r["network"] or "",
               r["messages"], r["parts"], r["pack_parts"], r["rate"], r["total"])
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class MarginLine:
    """For one sending partner below the scope: what the scope earned, paid and kept on its traffic."""

    origin_partner_id: int
    messages: int
    income: Decimal     # what the partner directly below paid the scope for this traffic
    cost: Decimal       # what the scope paid its own parent for it (0 for the system owner)

    @property
    def margin(self) -> Decimal:
        return self.income - self.cost


_MARGIN = """
WITH income AS (
    SELECT origin_partner_id AS origin, -sum(amount) AS income,
           sum(CASE WHEN type = 'refund' THEN 0 ELSE messages END) AS messages
    FROM transactions
    WHERE counterparty_id = $1 AND partner_id <> $1 AND origin_partner_id IS NOT NULL
      AND type = ANY($4::text[]) AND created_at >= $2 AND created_at < $3
    GROUP BY 1
), cost AS (
    SELECT origin_partner_id AS origin, -sum(amount) AS cost
    FROM transactions
    WHERE partner_id = $1 AND origin_partner_id IS NOT NULL AND origin_partner_id <> $1
      AND type = ANY($4::text[]) AND created_at >= $2 AND created_at < $3
    GROUP BY 1
)
SELECT coalesce(i.origin, c.origin) AS origin, coalesce(i.messages, 0) AS messages,
       coalesce(i.income, 0) AS income, coalesce(c.cost, 0) AS cost
FROM income i FULL JOIN cost c ON c.origin = i.origin
ORDER BY 1"""


async def margin_report(conn: Conn, scope: Scope, *, since: datetime, until: datetime) -> list[MarginLine]:
    """The scope's income, cost and margin per sending partner below it, over [since, until)."""
    rows = await conn.fetch(_MARGIN, scope.partner_id, since, until, list(TRAFFIC_TYPES))
    return [MarginLine(r["origin"], r["messages"], r["income"], r["cost"]) for r in rows]
