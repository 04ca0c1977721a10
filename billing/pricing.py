"""Pricing a batch of messages: pure decisions from a snapshot, no I/O.

For every message the paying chain is the sender and each reseller above
it, up to (not including) the system owner, who pays nobody. Each payer is
priced by its own holdings (Campaign Portal guide §7 and "Plan"):

1. a pack of the message's channel that covers the destination country and
   still holds at least ``parts`` messages, the one expiring first; else
2. the rate of its active plan for the traffic type (the network's rate,
   else the country's), times ``parts``; else
3. the message is refused ("no rate for 250/01").

A reseller therefore pays its parent at its own plan's rate for its client's
message while the client pays the reseller at the client's plan's rate: the
difference is the reseller's margin, recorded by both ledger rows.

Funds. Each payer may spend its balance plus credit limit (``available``).
Messages are decided in batch order; a message is accepted when every payer
of its chain can still cover its share after the messages accepted before
it. When a payer cannot, that message and every later message of the batch
that this payer would pay for from its balance are refused ("insufficient
balance"): a batch never accepts message N+1 of a sender for money after
refusing message N for lack of it (a later message a pack pays still goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, NamedTuple

from billing.rates import RateTable

Traffic = Literal["sms", "viber_promotion", "viber_transaction"]
Source = Literal["campaign", "api", "mo_reply", "smpp"]
SOURCES = ("campaign", "api", "mo_reply", "smpp")
ZERO = Decimal(0)

# Reason codes of refused messages, for edges that map them to statuses.
NO_RATE = "no_rate"
INSUFFICIENT = "insufficient_balance"
BLOCKED = "partner_blocked"
UNKNOWN_PARTNER = "unknown_partner"
BAD_DESTINATION = "bad_destination"


def traffic_of(channel: str, traffic_type: str | None = None) -> Traffic:
    """The plan traffic type of a message: SMS, or Viber promotion / transaction."""
    if channel == "sms":
        return "sms"
    if channel == "viber":
        kind = (traffic_type or "promotion").lower()
        return "viber_transaction" if kind.startswith("trans") else "viber_promotion"
    raise ValueError(f"unknown channel {channel!r}")


class ChargeRequest(NamedTuple):
    """One message to charge, as the pipeline knows it (one per message: a NamedTuple,
    as the other hot-path records below).

    ``mccmnc`` is MCC and MNC run together ("25001", "310150"), or the MCC
    alone when the network is unknown; ``parts`` is the segment count the
    SMPP text helper computed; ``ref`` is the message id, unique, used to
    refund or settle it later.
    """

    partner_id: int
    user_id: int | None
    channel: str                 # 'sms' | 'viber'
    mccmnc: str
    parts: int
    traffic_type: str | None     # Viber: 'promotion' | 'transaction'; ignored for SMS
    source: Source
    ref: str
    description: str = ""        # ledger text, e.g. the campaign's name; messages are grouped by it


@dataclass(frozen=True, slots=True)
class Account:
    """A payer as the snapshot saw it (under lock)."""

    partner_id: int
    parent_id: int
    status: str
    currency: str
    available: Decimal           # balance + credit limit


@dataclass(frozen=True, slots=True)
class PlanRates:
    plan_id: int
    revision: int
    currency: str
    by_delivered: bool
    table: RateTable


@dataclass(slots=True)
class PackHolding:
    """A live pack subscription; ``remaining`` is decremented as the batch is priced."""

    id: int
    partner_id: int
    channel: str
    mccs: frozenset[str] | None  # None: any destination
    remaining: int
    cost_per_message: Decimal
    by_delivered: bool
    expires_at: datetime | None = None


@dataclass(slots=True)
class Snapshot:
    """What pricing needs, loaded for the partners of one batch."""

    chains: dict[int, tuple[int, ...]] = field(default_factory=dict)   # sender → payers, sender first
    accounts: dict[int, Account] = field(default_factory=dict)
    plans: dict[tuple[int, str], PlanRates] = field(default_factory=dict)        # (payer, traffic)
    packs: dict[tuple[int, str], list[PackHolding]] = field(default_factory=dict)  # (payer, channel), by expiry


class LevelCharge(NamedTuple):
    """What one payer of the chain pays for one message.

    (Hot-path records are NamedTuples: immutable like frozen dataclasses, and
    several times cheaper to create, which matters at 20,000 messages/s.)
    """

    payer_id: int
    amount: Decimal              # taken from the balance (0 when a pack paid)
    rate: Decimal                # per part: the plan rate, or the pack's cost per message
    pack_id: int                 # 0 when the plan paid
    by_delivered: bool


class Decision(NamedTuple):
    request: ChargeRequest
    ok: bool
    levels: tuple[LevelCharge, ...] = ()
    reason: str = ""
    code: str = ""

    @property
    def amount(self) -> Decimal:
        """What the sender pays from its balance."""
        return self.levels[0].amount if self.levels else ZERO

    @property
    def pack_id(self) -> int | None:
        """The sender's pack that paid, if one did."""
        return (self.levels[0].pack_id or None) if self.levels else None


def _label(mcc: str, mnc: str | None) -> str:
    return f"{mcc}/{mnc}" if mnc else mcc


def price_batch(snapshot: Snapshot, requests: Sequence[ChargeRequest], *,
                memo: bool = True) -> list[Decision]:
    """Decide every message of a batch (see the module doc for the rules); mutates pack counts.

    ``memo``: decide what does not change within the batch (the chain's statuses, the
    rates, the refusals for no rate) once per sender, network, traffic and parts, and
    only the funds per message, for messages no pack of the chain could pay. The
    decisions are the same either way (a test compares them); False is for that test.
    """
    if memo:
        return _price_memo(snapshot, requests)
    return _price_each(snapshot, requests)


# The fixed part of a decision, for messages alike: the plan-paid levels in chain order and
# what refuses the message after them (no rate), or a refusal before any funds are checked.
_Fixed = tuple[tuple[LevelCharge, ...], "tuple[str, str] | None"]
_PACKS = object()  # a pack of the chain may pay: decided message by message


def _fixed(snapshot: Snapshot, chain: tuple[int, ...], req: ChargeRequest) -> _Fixed | object:
    """What decides ``req`` and every message alike, checked in the order of _price_each."""
    mccmnc = req.mccmnc
    if len(mccmnc) not in (3, 5, 6) or not mccmnc.isdigit():
        return (), (f"unknown destination network {mccmnc!r}", BAD_DESTINATION)
    traffic = traffic_of(req.channel, req.traffic_type)
    accounts = snapshot.accounts
    for depth, payer in enumerate(chain):
        if accounts[payer].status != "active":
            return (), ("partner blocked" + _who(depth, payer), BLOCKED)
    mcc = mccmnc[:3]
    levels: list[LevelCharge] = []
    for depth, payer in enumerate(chain):
        if snapshot.packs.get((payer, req.channel)):
            return _PACKS
        plan = snapshot.plans.get((payer, traffic))
        rate = plan.table.lookup(mccmnc) if plan is not None else None
        if rate is None:
            return tuple(levels), (f"no rate for {_label(mcc, mccmnc[3:])}{_who(depth, payer)}", NO_RATE)
        levels.append(LevelCharge(payer, rate * req.parts, rate, 0, plan.by_delivered))  # type: ignore[union-attr]
    return tuple(levels), None


def _price_memo(snapshot: Snapshot, requests: Sequence[ChargeRequest]) -> list[Decision]:
    decisions: list[Decision] = []
    append = decisions.append
    spent: dict[int, Decimal] = {}
    exhausted: set[int] = set()
    chains, accounts = snapshot.chains, snapshot.accounts
    fixed: dict[tuple, _Fixed | object] = {}
    for req in requests:
        key = (req.partner_id, req.channel, req.traffic_type, req.mccmnc, req.parts)
        known = fixed.get(key)
        if known is None:
            chain = chains.get(req.partner_id)
            if chain is None:
                known = ((), ("unknown partner", UNKNOWN_PARTNER))
            else:
                known = _fixed(snapshot, chain, req)
            fixed[key] = known
        if known is _PACKS:
            # pack counts change as the batch goes: the general rule, message by message
            (decision,) = _price_each(snapshot, (req,), spent, exhausted)
            append(decision)
            continue
        levels, refusal = known  # type: ignore[misc]
        for depth, level in enumerate(levels):
            payer = level.payer_id
            if payer in exhausted or spent.get(payer, ZERO) + level.amount > accounts[payer].available:
                exhausted.add(payer)
                refusal = ("insufficient balance" + _who(depth, payer), INSUFFICIENT)
                break
        if refusal is not None:
            append(Decision(req, False, (), refusal[0], refusal[1]))
            continue
        for level in levels:
            if level.amount:
                spent[level.payer_id] = spent.get(level.payer_id, ZERO) + level.amount
        append(Decision(req, True, levels, "", ""))
    return decisions


def _price_each(snapshot: Snapshot, requests: Sequence[ChargeRequest],
                spent: dict[int, Decimal] | None = None, exhausted: set[int] | None = None
                ) -> list[Decision]:
    """The rules applied message by message (``spent``/``exhausted``: the batch's so far)."""
    decisions: list[Decision] = []
    append = decisions.append
    spent = {} if spent is None else spent
    exhausted = set() if exhausted is None else exhausted
    chains, accounts, plans, packs = snapshot.chains, snapshot.accounts, snapshot.plans, snapshot.packs
    traffics: dict[tuple[str, str | None], str] = {}
    no_packs: tuple[PackHolding, ...] = ()
    for req in requests:
        chain = chains.get(req.partner_id)
        if chain is None:
            append(Decision(req, False, (), "unknown partner", UNKNOWN_PARTNER))
            continue
        mccmnc = req.mccmnc
        if len(mccmnc) not in (3, 5, 6) or not mccmnc.isdigit():
            append(Decision(req, False, (), f"unknown destination network {mccmnc!r}", BAD_DESTINATION))
            continue
        mcc = mccmnc[:3]
        channel = req.channel
        traffic = traffics.get((channel, req.traffic_type))
        if traffic is None:
            traffic = traffics[(channel, req.traffic_type)] = traffic_of(channel, req.traffic_type)
        parts = req.parts
        levels: list[LevelCharge] = []
        used_packs: list[PackHolding] = []
        refusal: tuple[str, str] | None = None
        for depth, payer in enumerate(chain):
            if accounts[payer].status != "active":
                refusal = ("partner blocked" + _who(depth, payer), BLOCKED)
                break
        if refusal is None:
            for depth, payer in enumerate(chain):
                charge = None
                for pack in packs.get((payer, channel), no_packs):
                    if pack.remaining >= parts and (pack.mccs is None or mcc in pack.mccs):
                        charge = LevelCharge(payer, ZERO, pack.cost_per_message, pack.id, pack.by_delivered)
                        used_packs.append(pack)
                        break
                if charge is None:
                    plan = plans.get((payer, traffic))
                    rate = plan.table.lookup(mccmnc) if plan is not None else None
                    if rate is None:
                        refusal = (f"no rate for {_label(mcc, mccmnc[3:])}{_who(depth, payer)}", NO_RATE)
                        break
                    amount = rate * parts
                    if payer in exhausted or spent.get(payer, ZERO) + amount > accounts[payer].available:
                        exhausted.add(payer)
                        refusal = ("insufficient balance" + _who(depth, payer), INSUFFICIENT)
                        break
                    charge = LevelCharge(payer, amount, rate, 0, plan.by_delivered)
                levels.append(charge)
        if refusal is not None:
            append(Decision(req, False, (), refusal[0], refusal[1]))
            continue
        for pack in used_packs:
            pack.remaining -= parts
        for level in levels:
            if level.amount:
                spent[level.payer_id] = spent.get(level.payer_id, ZERO) + level.amount
        append(Decision(req, True, tuple(levels), "", ""))
    return decisions


def _who(depth: int, payer: int) -> str:
    return "" if depth == 0 else f" (reseller {payer})"
