"""Charging batches of messages: the pipeline's entry point to billing.

One call charges a whole batch with a fixed number of statements, whatever
its size:

1. lock the paying partners of the batch (``SELECT … ORDER BY id FOR
   UPDATE``: a fixed lock order, so concurrent batches never deadlock) and
   read their available funds;
2. read their active plans (rates come from a per-process cache checked
   against each plan's revision) and live packs;
3. :func:`billing.pricing.price_batch` decides every message in memory;
4. one UPDATE decrements the packs used, one UPDATE debits every payer
   (guarded by ``balance - amount >= -credit_limit``, and by the CHECK of
   0001_core.sql), one INSERT writes the ledger rows aggregated per payer,
   sender, user, type and description with their per-MCCMNC lines and, in the
   same statement, the per-message charge rows (what each level paid, to undo it).

The lock rule: whoever changes a partner's balance or its packs' counts
outside a single guarded statement locks the partner row first (charging,
refunds, pack cancellation do; top-ups and pack purchases are one guarded
statement each). Under the lock the snapshot's balances and pack counts are
exact, so the guarded UPDATEs always succeed; if one did not, the batch
fails whole (Conflict / InsufficientBalance) rather than charge wrongly.

The lock is held from step 1 to the commit, so concurrent batches of one
partner take turns for their whole transaction. The hot path (the message
writer, :mod:`gateway.accept.writer`) prices without it instead:
:meth:`Charger.price` only reads and prices, and :meth:`Priced.record`, which
the caller runs last in its transaction, writes the ledger and charge rows,
takes the lock (same order), checks that every payer's status is unchanged and
its funds still cover the debit, and runs the guarded UPDATEs. If a check
fails it raises :class:`~billing.errors.StaleSnapshot` and the caller rolls
back and prices again under the lock (``price(lock=True)``). For the usual
batch (one payer) rows, check and debit are one statement, which a failed
check aborts whole (``herald_require``, migration 0430). The lock then lasts
from the debit to the commit, not for the pricing and the writing of thousands
of rows. A stale read can only refuse a message that a later read would have
accepted (funds that arrived meanwhile), the same answer as if the batch had
come a moment earlier.

All of it runs in one transaction — the caller's when one is open (e.g. the
message writer's, which also stores the messages; an error then fails the
caller's transaction, so no savepoint is spent on it), else its own — so the debits,
the ledger, and the margin rows of every reseller level commit together or
not at all.

By-delivered billing: the debit at submit is the reservation; on the
receipt, :func:`settle_delivered` keeps it (delivered) or gives it back
(undelivered) for the levels whose pack or plan bills by delivered. A send
that failed is refunded for every level by :func:`refund`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from billing.errors import InsufficientBalance, StaleSnapshot
from billing.pricing import (
    SOURCES,
    ZERO,
    Account,
    ChargeRequest,
    Decision,
    PackHolding,
    PlanRates,
    Snapshot,
    price_batch,
)
from billing.rates import RateRow, RateTable
from config.errors import Conflict, Invalid


class ChargeResult(NamedTuple):
    """The outcome for one message, in request order."""

    ref: str
    ok: bool
    amount: Decimal          # taken from the sender's balance (0 when a pack paid)
    currency: str
    pack_id: int | None      # the sender's pack subscription that paid, if any
    reason: str              # why it was refused ('' when ok)
    code: str                # billing.pricing reason code ('' when ok)
    ledger_id: int | None    # the sender's ledger row (aggregated for the batch)


# The payers of the batch's senders with their active plans (one array element per
# traffic) and whether they hold a live pack: one round trip for what pricing needs
# (packs are read only where there are some).
_PAYERS = """
SELECT p.id, p.parent_id, p.path, p.status, p.currency, p.balance + p.credit_limit AS available,
       pl.traffics, pl.plan_ids, pl.revisions, pl.currencies, pl.modes,
       EXISTS (SELECT 1 FROM pack_subscriptions s
               WHERE s.partner_id = p.id AND s.remaining > 0 AND s.canceled_at IS NULL
                 AND s.expires_at > now()) AS has_packs
FROM partners p
LEFT JOIN LATERAL (
    SELECT array_agg(pp.traffic) AS traffics, array_agg(r.id) AS plan_ids,
           array_agg(r.revision) AS revisions, array_agg(r.currency) AS currencies,
           array_agg(r.billing_mode) AS modes
    FROM partner_plans pp JOIN rate_plans r ON r.id = pp.plan_id
    WHERE pp.partner_id = p.id
) pl ON true
WHERE p.id IN (SELECT unnest(path) FROM partners WHERE id = ANY($1::bigint[])) AND p.parent_id IS NOT NULL
ORDER BY p.id"""
# serialises charges; inserts referencing the partner (FK checks) go on
_LOCK_PAYERS = _PAYERS + "\nFOR NO KEY UPDATE OF p"
_RELOCK = """
SELECT id, status, balance + credit_limit AS available FROM partners
WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"""

_RATES = "SELECT plan_id, mcc, mnc, price FROM plan_rates WHERE plan_id = ANY($1::bigint[])"

_PACKS = """
SELECT id, partner_id, channel, mccs, remaining, cost_per_message, billing_mode, expires_at
FROM pack_subscriptions
WHERE partner_id = ANY($1::bigint[]) AND remaining > 0 AND canceled_at IS NULL AND expires_at > now()
ORDER BY expires_at, id"""

_TAKE_FROM_PACKS = """
UPDATE pack_subscriptions s SET remaining = s.remaining - d.n
FROM unnest($1::bigint[], $2::int[]) AS d(id, n)
WHERE s.id = d.id AND s.remaining >= d.n
RETURNING s.id"""
# Priced without the lock, a batch may have counted on a pack that was cancelled or expired since.
_TAKE_FROM_LIVE_PACKS = _TAKE_FROM_PACKS.replace(
    "s.remaining >= d.n", "s.remaining >= d.n AND s.canceled_at IS NULL AND s.expires_at > now()")

_DEBIT = """
UPDATE partners p SET balance = p.balance - d.amount
FROM unnest($1::bigint[], $2::numeric[]) AS d(id, amount)
WHERE p.id = d.id AND p.balance - d.amount >= -p.credit_limit
RETURNING p.id"""

_CREDIT = """
UPDATE partners p SET balance = p.balance + d.amount
FROM unnest($1::bigint[], $2::numeric[]) AS d(id, amount)
WHERE p.id = d.id"""

_RETURN_TO_PACKS = """
UPDATE pack_subscriptions s SET remaining = s.remaining + d.n
FROM unnest($1::bigint[], $2::int[]) AS d(id, n)
WHERE s.id = d.id"""

# The ledger of a batch in one statement: ids drawn for each group, then the
# transactions and their per-MCCMNC lines inserted together. Arrays travel as
# text literals (see _array): one string per column instead of a value each.
_LEDGER_ITEMS = """g AS MATERIALIZED (
    SELECT nextval('transactions_id_seq') AS id, g.*
    FROM unnest($1::text::bigint[], $2::text::bigint[], $3::text::bigint[], $4::text::bigint[],
                $5::text::text[], $6::text::numeric[], $7::text::text[], $8::text::int[], $9::text::int[],
                $10::text::text[])
         WITH ORDINALITY AS g(partner_id, counterparty_id, origin_partner_id, user_id, type, amount,
                              currency, messages, pack_messages, description, ord)
), t AS (
    INSERT INTO transactions (id, partner_id, counterparty_id, origin_partner_id, user_id, type, amount,
                              currency, messages, pack_messages, description)
    SELECT id, partner_id, counterparty_id, origin_partner_id, user_id, type, amount, currency, messages,
           pack_messages, description FROM g
), d AS (
    INSERT INTO transaction_details (transaction_id, mccmnc, messages, parts, pack_parts, rate, total)
    SELECT g.id, d.mccmnc, d.messages, d.parts, d.pack_parts, d.rate, d.total
    FROM unnest($11::text::bigint[], $12::text::text[], $13::text::int[], $14::text::int[],
                $15::text::int[], $16::text::numeric[], $17::text::numeric[])
         AS d(ord, mccmnc, messages, parts, pack_parts, rate, total)
    JOIN g ON g.ord = d.ord
)"""
_LEDGER = f"WITH {_LEDGER_ITEMS}\nSELECT id FROM g ORDER BY ord"

# The per-message charge rows, each joined to its ledger row by the group's ordinal: with
# the ledger, one round trip where a COPY after it took three. A charge's level arrays come
# as array literals inside a text[] and are cast per row.
_CHARGE_ITEMS = _LEDGER_ITEMS + """, c AS (
    INSERT INTO charges (ref, partner_id, user_id, type, description, mccmnc, parts, payer_ids,
                         amounts, rates, pack_ids, by_delivered, transaction_id)
    SELECT c.ref, c.partner_id, c.user_id, c.type, c.description, c.mccmnc, c.parts,
           c.payer_ids::bigint[], c.amounts::numeric[], c.rates::numeric[], c.pack_ids::bigint[],
           c.by_delivered::boolean[], g.id
    FROM unnest($18::text::text[], $19::text::bigint[], $20::text::bigint[], $21::text::text[],
                $22::text::text[], $23::text::text[], $24::text::int[], $25::text::text[],
                $26::text::text[], $27::text::text[], $28::text::text[], $29::text::text[],
                $30::text::bigint[])
         AS c(ref, partner_id, user_id, type, description, mccmnc, parts, payer_ids, amounts, rates,
              pack_ids, by_delivered, ord)
    LEFT JOIN g ON g.ord = c.ord
)"""
_CHARGES = f"WITH {_CHARGE_ITEMS}\nSELECT ARRAY(SELECT id FROM g ORDER BY ord) AS ids"

# The same with one payer's guarded debit too (the status the pricing saw, and funds that
# still cover it; a debit of zero still takes the lock a pack-paid batch needs). When the
# guard does not hold, herald_require (migration 0430) aborts the whole statement with
# SQLSTATE HR001, raised to the caller as StaleSnapshot: so the statement may commit alone.
_DEBIT_ITEMS = _CHARGE_ITEMS + """, debit AS (
    UPDATE partners SET balance = balance - $31
    WHERE id = $32 AND status = $33 AND balance + credit_limit >= $31
    RETURNING id
)"""
_CHARGES_AND_DEBIT = (
    f"WITH {_DEBIT_ITEMS}\nSELECT ARRAY(SELECT id FROM g ORDER BY ord) AS ids,"
    "\n       herald_require(EXISTS (SELECT 1 FROM debit),"
    " 'the payer changed while its batch was priced') AS debited")
_REQUIRE_FAILED = "HR001"  # herald_require's SQLSTATE


def _array(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of numbers, or of text quoted as the array syntax wants."""
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        elif isinstance(v, str):
            items.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            items.append(str(v))
    return "{" + ",".join(items) + "}"


def _numbers(values: list) -> str:
    """An array literal of values that print as themselves (numbers, digit strings), no NULLs."""
    return "{" + ",".join(map(str, values)) + "}"


def _texts(values: Sequence[str]) -> str:
    """An array literal of strings, each quoted (none is NULL)."""
    quoted = '","'.join([v.replace("\\", "\\\\").replace('"', '\\"') for v in values])
    return '{"' + quoted + '"}' if quoted or values else "{}"


def _optional_numbers(values: Iterable[object]) -> str:
    """An array literal of numbers where None is NULL."""
    return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"

_CLOSE = """
WITH c AS (
    UPDATE charges SET state = $2, settled_at = now()
    WHERE ref = ANY($1::text[]) AND state = 'open'
    RETURNING ref, partner_id, user_id, mccmnc, parts, payer_ids, amounts, rates, pack_ids, by_delivered
)
SELECT c.ref, c.partner_id, c.user_id, c.mccmnc, c.parts, u.payer_id, u.amount, u.rate, u.pack_id,
       u.by_delivered
FROM c LEFT JOIN LATERAL unnest(c.payer_ids, c.amounts, c.rates, c.pack_ids, c.by_delivered)
     AS u(payer_id, amount, rate, pack_id, by_delivered) ON true"""


# (payer, origin, user, type, description, mccmnc, channel, traffic type, paid by a pack).
# Within one batch a payer's rate for a network and traffic is fixed, so the rate
# rides in the value and the key hashes no Decimal.
DetailKey = tuple[int, int, "int | None", str, str, str, str, "str | None", bool]


def _add_detail(details: dict, payer: int, head: tuple, split: tuple, parts: int, amount: Decimal,
                rate: Decimal, pack_id: int) -> None:
    """Count one message of one payer into its per-MCCMNC ledger line (total signed as the ledger).

    ``head`` is (origin, user, type, description, mccmnc); ``split`` is what
    else separates lines: (channel, traffic type) for charges, (rate, None)
    for refunds.
    """
    key = (payer, *head, *split, pack_id != 0)
    line = details.get(key)
    if line is None:
        details[key] = [1, parts, parts if pack_id else 0, -amount, None if pack_id else rate]
    else:
        line[0] += 1
        line[1] += parts
        if pack_id:
            line[2] += parts
        line[3] -= amount


GroupKey = tuple[int, int, int | None, str, str]  # payer, origin, user, type, description


async def _write_ledger(conn: asyncpg.Connection, details: dict[DetailKey, list], parents: dict[int, int],
                        currencies: dict[int, str]) -> dict[GroupKey, int]:
    """Insert ledger rows (one per group key) with their per-MCCMNC lines in one statement.

    ``details`` maps a :data:`DetailKey` (whose first five items are the
    group key) to [messages, parts, pack_parts, total, rate or None]; a
    group's amount and counts are the sums of its lines. Returns the ledger
    id of each group key.
    """
    if not details:
        return {}
    groups, args = _ledger_args(details, parents, currencies)
    ids = await conn.fetch(_LEDGER, *args)
    return {key: row["id"] for key, row in zip(groups, ids, strict=True)}


def _ledger_args(details: dict[DetailKey, list], parents: dict[int, int], currencies: dict[int, str]
                 ) -> tuple[dict[GroupKey, list], list[str]]:
    """The ledger's groups (key → [ordinal, amount, messages, pack messages], in ordinal
    order) and the 17 array literals :data:`_LEDGER` takes."""
    groups: dict[GroupKey, list] = {}
    d_group: list[int] = []
    d_mccmnc: list[str] = []
    d_messages: list[int] = []
    d_parts: list[int] = []
    d_pack_parts: list[int] = []
    d_rate: list[Decimal | None] = []
    d_total: list[Decimal] = []
    for key, (messages, parts, pack_parts, total, rate) in details.items():
        gkey = key[:5]
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = [len(groups) + 1, ZERO, 0, 0]
        group[1] += total
        group[2] += messages
        if rate is None:
            group[3] += messages
        d_group.append(group[0])
        d_mccmnc.append(key[5])
        d_messages.append(messages)
        d_parts.append(parts)
        d_pack_parts.append(pack_parts)
        d_rate.append(rate)
        d_total.append(total)
    cols: tuple[list, ...] = ([], [], [], [], [], [], [], [], [], [])
    for (payer, origin, user, kind, text), (_, amount, messages, pack_messages) in groups.items():
        for col, value in zip(cols, (payer, parents.get(payer), origin, user, kind, amount, currencies[payer],
                                     messages, pack_messages, text), strict=True):
            col.append(value)
    return groups, [
        *(_array(c) for c in cols),
        # MCCMNCs of accepted messages are digits (pricing refused others): no quoting needed
        _numbers(d_group), _numbers(d_mccmnc), _numbers(d_messages), _numbers(d_parts),
        _numbers(d_pack_parts), _array(d_rate), _numbers(d_total),
    ]


class Priced:
    """A batch priced by :meth:`Charger.price`: its :meth:`results`, and what
    :meth:`record` still has to write and take, last in the caller's transaction."""

    __slots__ = ("_debits", "_decisions", "_locked", "_packs", "_snap", "ledger_ids")

    def __init__(self, snap: Snapshot, decisions: list[Decision], *, locked: bool) -> None:
        self._snap = snap
        self._decisions = decisions
        self._locked = locked
        self._debits, self._packs = _debits(decisions)
        self.ledger_ids: dict[str, int] = {}   # ref → the sender's ledger row, once recorded

    def results(self) -> list[ChargeResult]:
        """One per request, in order (``ledger_id`` is None until :meth:`record`)."""
        return _results(self._snap, self._decisions, self.ledger_ids)

    async def record(self, conn: asyncpg.Connection) -> None:
        """Write the ledger and charge rows and take the balances and packs, in the
        caller's transaction.

        Priced under the lock, the guarded UPDATEs cannot fail (if one did, the batch
        fails whole: Conflict / InsufficientBalance). Priced without it, the payers are
        locked now, in id order, and checked: when a payer's status changed, its funds
        no longer cover its debit, or a pack no longer has the messages counted on it,
        :class:`~billing.errors.StaleSnapshot` is raised and the transaction must be
        rolled back.
        """
        if not any(d.ok for d in self._decisions):
            return
        snap, decisions = self._snap, self._decisions
        if self._locked:
            await _take(conn, self._debits, self._packs, stale=False)
            self.ledger_ids = await _record(conn, snap, decisions)
            return
        seen = snap.accounts
        if len(seen) <= 1:
            # the usual batch: rows, lock, check and debit in one statement (packs, if any, next)
            debit = None
            if seen:
                ((payer, account),) = seen.items()
                debit = (self._debits.get(payer, ZERO), payer, account.status)
            self.ledger_ids = await _record(conn, snap, decisions, debit=debit)
            await _take(conn, {}, self._packs, stale=True)
            return
        # rows first, so that the payers' locks wait only for the checks and the UPDATEs
        self.ledger_ids = await _record(conn, snap, decisions)
        for row in await conn.fetch(_RELOCK, list(seen)):
            if row["status"] != seen[row["id"]].status or row["available"] < self._debits.get(row["id"], ZERO):
                raise StaleSnapshot(f"partner {row['id']} changed while its batch was priced")
        await _take(conn, self._debits, self._packs, stale=True)


async def _take(conn: asyncpg.Connection, debits: dict[int, Decimal], packs: dict[int, int], *,
                stale: bool) -> None:
    """The pack and balance UPDATEs of a batch, each guarded. A refused guard is a
    :class:`StaleSnapshot` after an unlocked pricing, and cannot happen under the lock."""
    if packs:
        ids = list(packs)
        done = await conn.fetch(_TAKE_FROM_LIVE_PACKS if stale else _TAKE_FROM_PACKS, ids,
                                [packs[i] for i in ids])
        if len(done) != len(ids):
            raise (StaleSnapshot if stale else Conflict)(
                "a pack changed while the batch was being charged; retry the batch")
    if debits:
        ids = list(debits)
        done = await conn.fetch(_DEBIT, ids, [debits[i] for i in ids])
        if len(done) != len(ids):
            raise (StaleSnapshot if stale else InsufficientBalance)(
                "a balance changed while the batch was being charged")


class Charger:
    """Charges batches of messages; holds this process's cache of plan rates.

    Create one per process and share it: rates are reloaded only for plans
    whose revision changed since they were cached.
    """

    def __init__(self) -> None:
        self._plans: dict[int, PlanRates] = {}

    async def _snapshot(self, conn: asyncpg.Connection, senders: list[int], *, lock: bool = True) -> Snapshot:
        snap = Snapshot()
        rows = await conn.fetch(_LOCK_PAYERS if lock else _PAYERS, senders)
        payer_ids = []
        # (partner, traffic, plan id, revision, currency, billing mode), one per active plan
        plan_rows: list[tuple[int, str, int, int, str, str]] = []
        with_packs = []
        for r in rows:
            pid = r["id"]
            snap.accounts[pid] = Account(pid, r["parent_id"], r["status"], r["currency"].strip(), r["available"])
            snap.chains[pid] = tuple(reversed(r["path"][1:]))
            payer_ids.append(pid)
            if r["plan_ids"]:
                plan_rows += [(pid, *plan) for plan in zip(r["traffics"], r["plan_ids"], r["revisions"],
                                                           r["currencies"], r["modes"], strict=True)]
            if r["has_packs"]:
                with_packs.append(pid)
        # Senders that are the system owner pay nobody: an empty chain.
        missing = [s for s in senders if s not in snap.chains]
        if missing:
            for r in await conn.fetch(
                "SELECT id FROM partners WHERE id = ANY($1::bigint[]) AND parent_id IS NULL", missing
            ):
                snap.chains[r["id"]] = ()
        if not payer_ids:
            return snap
        stale = {plan_id for _, _, plan_id, revision, _, _ in plan_rows
                 if (cached := self._plans.get(plan_id)) is None or cached.revision != revision}
        if stale:
            tables: dict[int, list[RateRow]] = defaultdict(list)
            for r in await conn.fetch(_RATES, list(stale)):
                tables[r["plan_id"]].append(RateRow(r["mcc"], r["mnc"], r["price"]))
            for _, _, plan_id, revision, currency, mode in plan_rows:
                if plan_id in stale:
                    self._plans[plan_id] = PlanRates(plan_id, revision, currency.strip(), mode == "delivered",
                                                     RateTable(tables.get(plan_id, ())))
        for partner_id, traffic, plan_id, _, _, _ in plan_rows:
            snap.plans[(partner_id, traffic)] = self._plans[plan_id]
        if not with_packs:
            return snap
        for r in await conn.fetch(_PACKS, with_packs):
            holding = PackHolding(r["id"], r["partner_id"], r["channel"],
                                  frozenset(r["mccs"]) if r["mccs"] else None, r["remaining"],
                                  r["cost_per_message"], r["billing_mode"] == "delivered", r["expires_at"])
            snap.packs.setdefault((r["partner_id"], r["channel"]), []).append(holding)
        return snap

    async def price(self, conn: asyncpg.Connection, requests: Sequence[ChargeRequest], *,
                    lock: bool = False) -> Priced:
        """Read what pricing needs and price the batch; nothing is written yet.

        ``lock=False`` only reads, in or out of a transaction, and
        :meth:`Priced.record` later checks that nothing the pricing relied on
        moved. ``lock=True`` locks the paying partners (in id order) until the
        caller's transaction ends: call it inside one.
        """
        if lock and not conn.is_in_transaction():
            raise RuntimeError("price(lock=True) needs a transaction to hold the lock")
        if not requests:
            return Priced(Snapshot(), [], locked=lock)
        snap = await self._snapshot(conn, _senders(requests), lock=lock)
        return Priced(snap, price_batch(snap, requests), locked=lock)

    async def charge(self, conn: asyncpg.Connection, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        """Price and charge a batch under the lock, in the caller's transaction or one of its
        own; one result per request, in order (refused ones have ok=False)."""
        if not requests:
            return []
        if conn.is_in_transaction():
            priced = await self._charge(conn, requests)
        else:
            async with conn.transaction():
                priced = await self._charge(conn, requests)
        return priced.results()

    async def _charge(self, conn: asyncpg.Connection, requests: Sequence[ChargeRequest]) -> Priced:
        priced = await self.price(conn, requests, lock=True)
        await priced.record(conn)
        return priced


async def _record(conn: asyncpg.Connection, snap: Snapshot, decisions: list[Decision], *,
                  debit: tuple[Decimal, int, str] | None = None) -> dict[str, int]:
    """Write the ledger and the charge rows in one statement, with ``debit`` — (amount,
    payer, status the pricing saw) — taken in it when given: the ledger id of each
    accepted ref. Raises :class:`StaleSnapshot`, the statement undone, when the debit's
    guard failed."""
    details: dict[DetailKey, list] = {}
    accepted = [d for d in decisions if d.ok]
    if not accepted and debit is None:
        return {}  # nothing accepted (record returns before this)
    for d in accepted:
        req = d.request
        head = (req.partner_id, req.user_id, req.source, req.description, req.mccmnc)
        traffic = (req.channel, req.traffic_type)
        for payer, amount, rate, pack_id, _ in d.levels:
            _add_detail(details, payer, head, traffic, req.parts, amount, rate, pack_id)
    parents = {a.partner_id: a.parent_id for a in snap.accounts.values()}
    currencies = {a.partner_id: a.currency for a in snap.accounts.values()}
    groups, ledger_args = _ledger_args(details, parents, currencies)
    ordinals = {key: group[0] for key, group in groups.items()}
    refs: list[str] = []
    partner_ids: list[int] = []
    user_ids: list[int | None] = []
    types: list[str] = []
    descriptions: list[str] = []
    mccmncs: list[str] = []
    parts: list[int] = []
    level_columns: tuple[list[str], ...] = ([], [], [], [], [])
    group_of: list[int | None] = []
    for d in accepted:
        req = d.request
        levels = d.levels
        if levels:
            group_of.append(ordinals[(levels[0].payer_id, req.partner_id, req.user_id, req.source,
                                      req.description)])
            for out, column in zip(level_columns, zip(*levels, strict=True), strict=True):
                out.append("{" + ",".join(map(str, column)) + "}")
        else:
            group_of.append(None)
            for out in level_columns:
                out.append("{}")
        refs.append(req.ref)
        partner_ids.append(req.partner_id)
        user_ids.append(req.user_id)
        types.append(req.source)
        descriptions.append(req.description)
        mccmncs.append(req.mccmnc)
        parts.append(req.parts)
    args = [*ledger_args, _texts(refs), _numbers(partner_ids), _optional_numbers(user_ids), _texts(types),
            _texts(descriptions), _texts(mccmncs), _numbers(parts), *(_texts(c) for c in level_columns),
            _optional_numbers(group_of)]
    if debit is not None:
        args += debit
    try:
        ledger_ids = await conn.fetchval(_CHARGES if debit is None else _CHARGES_AND_DEBIT, *args)
    except asyncpg.UniqueViolationError as exc:
        if exc.table_name != "charges":
            raise
        raise Conflict("a message of the batch was already charged (same ref)") from exc
    except asyncpg.PostgresError as exc:
        if exc.sqlstate != _REQUIRE_FAILED:
            raise
        raise StaleSnapshot(exc.message) from exc
    return {ref: ledger_ids[g - 1] for ref, g in zip(refs, group_of, strict=True) if g is not None}


def _senders(requests: Sequence[ChargeRequest]) -> list[int]:
    """The batch's senders in lock order, after checking the requests are well formed."""
    refs = set()
    for req in requests:
        if req.parts < 1:
            raise Invalid(f"message {req.ref}: parts must be at least 1")
        if req.source not in SOURCES:
            raise Invalid(f"message {req.ref}: unknown source {req.source!r}")
        refs.add(req.ref)
    if len(refs) != len(requests):
        raise Invalid("the batch repeats a message ref")
    return sorted({r.partner_id for r in requests})


def _debits(decisions: list[Decision]) -> tuple[dict[int, Decimal], dict[int, int]]:
    """What the accepted decisions take: amount per payer, messages per pack."""
    debits: dict[int, Decimal] = defaultdict(Decimal)
    pack_use: dict[int, int] = defaultdict(int)
    for d in decisions:
        if d.ok:
            parts = d.request.parts
            for payer, amount, _, pack_id, _ in d.levels:
                if amount:
                    debits[payer] += amount
                if pack_id:
                    pack_use[pack_id] += parts
    return debits, pack_use


def _results(snap: Snapshot, decisions: list[Decision], tx_ids: dict[str, int]) -> list[ChargeResult]:
    results = []
    for d in decisions:
        sender = snap.accounts.get(d.request.partner_id)
        results.append(ChargeResult(
            d.request.ref, d.ok, d.amount, sender.currency if sender is not None else "", d.pack_id,
            d.reason, d.code, tx_ids.get(d.request.ref),
        ))
    return results


async def charge_messages(
    conn: asyncpg.Connection, requests: Sequence[ChargeRequest], *, charger: Charger | None = None
) -> list[ChargeResult]:
    """Price and charge a batch (see :class:`Charger`); pass a long-lived charger to reuse its cache."""
    return await (charger or Charger()).charge(conn, requests)


async def _give_back(conn: asyncpg.Connection, refs: Sequence[str], state: str, only_by_delivered: bool,
                     description: str) -> int:
    """Close open charges as ``state`` and return what their levels paid; how many charges closed."""
    async with conn.transaction():
        rows = await conn.fetch(_CLOSE, list(refs), state)
        closed = len({r["ref"] for r in rows})
        credits: dict[int, Decimal] = defaultdict(Decimal)
        packs: dict[int, int] = defaultdict(int)
        details: dict[DetailKey, list] = {}
        for r in rows:
            if r["payer_id"] is None or (only_by_delivered and not r["by_delivered"]):
                continue
            payer, amount, pack_id = r["payer_id"], r["amount"], r["pack_id"]
            if amount:
                credits[payer] += amount
            if pack_id:
                packs[pack_id] += r["parts"]
            # a refund line mirrors the charge: same counts, opposite total; charges of
            # different times may have had different rates, so lines are split by rate
            _add_detail(details, payer, (r["partner_id"], r["user_id"], "refund", description, r["mccmnc"]),
                        (r["rate"], None), r["parts"], -amount, r["rate"], pack_id)
        payers = sorted({k[0] for k in details})
        if payers:
            locked = await conn.fetch(
                "SELECT id, parent_id, currency FROM partners WHERE id = ANY($1::bigint[]) ORDER BY id"
                " FOR NO KEY UPDATE",
                payers,
            )
            if packs:
                ids = list(packs)
                await conn.execute(_RETURN_TO_PACKS, ids, [packs[i] for i in ids])
            if credits:
                ids = list(credits)
                await conn.execute(_CREDIT, ids, [credits[i] for i in ids])
            await _write_ledger(conn, details, {r["id"]: r["parent_id"] for r in locked},
                                {r["id"]: r["currency"].strip() for r in locked})
    return closed


async def refund(conn: asyncpg.Connection, refs: Sequence[str]) -> int:
    """A send failed: give every level back what it paid (balance or pack). Returns charges refunded.

    Only open charges are touched, so refunding twice, or after a receipt,
    changes nothing.
    """
    return await _give_back(conn, refs, "failed", False, "refund: message not sent")


async def settle_delivered(conn: asyncpg.Connection, refs: Sequence[str], delivered: bool) -> int:
    """Apply delivery receipts: delivered keeps the charge, undelivered refunds by-delivered levels.

    Returns the number of open charges settled; charges already settled or
    refunded are left alone (receipts may repeat).
    """
    if delivered:
        result = await conn.execute(
            "UPDATE charges SET state = 'delivered', settled_at = now() WHERE ref = ANY($1::text[]) AND state = 'open'",
            list(refs),
        )
        return int(result.split()[-1])
    return await _give_back(conn, refs, "undelivered", True, "refund: message not delivered")
