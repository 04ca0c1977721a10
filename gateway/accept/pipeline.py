"""The message pipeline: the one path every message takes into Herald.

Validate, look up the network, count, route, then charge and store through the
writer; one :data:`Result` per message, in order, once committed. The steps and
their rules: ``gateway/accept/README.md``."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg

from accounts import senders
from billing import pricing
from billing.charging import Charger, ChargeResult
from billing.errors import (
    ESME_RINVDSTADR,
    ESME_RINVSRCADR,
    ESME_RSUBMITFAIL,
)
from billing.refbook import PrefixTable, default_entries, load_prefix_table
from billing.refbook import revision as refbook_revision
from config.settings import Settings
from gateway.accept import routing, stoplist
from gateway.accept.msisdn import NumberRules
from gateway.accept.writer import MessageWriter
from gateway.store.messages import NewMessage, Status, new_message_ids
from smpp.segments import MAX_PARTS, count_segments

log = logging.getLogger("herald.pipeline")

ESME_RINVMSGLEN = 0x00000001  # SMPP 3.4 §5.1.3: message length is invalid
ESME_RINVESMCLASS = 0x00000043  # invalid esm_class (flash/MO combinations we refuse)
VIBER_MAX_CHARS = 1000         # the longest text a Viber business message carries
CHANNELS = ("sms", "viber")
ORIGINS = ("api", "smpp", "campaign")


class Reason(enum.StrEnum):
    """Why a message was refused (stable codes for logs, metrics and tests)."""

    EMPTY_MESSAGE = "empty_message"
    TOO_LONG = "too_long"
    BAD_CHANNEL = "bad_channel"
    FLASH_NOT_SMS = "flash_not_sms"
    MO_WITH_FLASH = "mo_with_flash"
    MO_DISABLED = "mo_disabled"
    BAD_CASCADE = "bad_cascade"
    INVALID_DESTINATION = "invalid_destination"
    INVALID_SENDER = "invalid_sender"
    STOPPED = "stop_list"
    UNKNOWN_NETWORK = "unknown_network"
    NO_ROUTE = "no_route"
    NO_RATE = "no_rate"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    PARTNER_BLOCKED = "partner_blocked"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Submission:
    """One message as an edge received it (destination as written, not yet checked)."""

    partner_id: int
    origin: str                        # 'api' | 'smpp' | 'campaign'
    sender: str
    destination: str
    text: str
    channel: str = "sms"               # 'sms' | 'viber'
    user_id: int | None = None
    api_key_id: int | None = None
    smpp_account_id: int | None = None
    smpp_session: str | None = None
    flash: bool = False
    accept_mo: bool = False
    label: str = ""
    campaign_id: int | None = None
    client_ref: str | None = None      # the producer's own reference: Herald never reads it
    registered_delivery: int = 0       # SMPP 3.4 §5.2.17
    callback_url: str | None = None    # snapshot of the API key's URL
    valid_until: datetime | None = None
    traffic_type: str | None = None    # Viber: 'promotion' | 'transaction'
    fallback_channel: str | None = None  # 'sms' for a Viber→SMS cascade
    fallback_ttl: int | None = None    # seconds before the cascade falls back
    image_url: str | None = None
    button_url: str | None = None
    button_caption: str | None = None
    # Set by callers that already encoded and split the text (SMPP: one submit_sm per part).
    parts: int | None = None
    encoding: str | None = None
    data_coding: int | None = None
    # SMPP: not sent before this time (schedule_delivery_time, None: now), and the
    # data_coding the client wrote the text in (a replace_sm's text comes in it too).
    scheduled_for: datetime | None = None
    smpp_data_coding: int | None = None
    # What the SMPP client wrote: its service_type; a part it split
    # itself (the concatenation reference, parts, part number, 16-bit reference); for
    # binary octets passed through, whether they start with a UDH.
    service_type: str | None = None
    concat_ref: int | None = None
    concat_total: int | None = None
    concat_seq: int | None = None
    concat_wide: bool | None = None
    udhi: bool | None = None
    # The SMS of a Viber→SMS cascade: the Viber message it stands in for.
    fallback_for: uuid.UUID | None = None


def for_destinations(template: Submission, destinations: Iterable[str]) -> list[Submission]:
    """``template`` once per destination (what :meth:`Pipeline.submit_fanouts` does cheaper)."""
    return [replace(template, destination=destination) for destination in destinations]


class Accepted(NamedTuple):
    """Stored, charged and queued: ``message_id`` is the client's transaction id.
    (One per message: a NamedTuple builds in a third of a frozen dataclass's time.)"""

    message_id: uuid.UUID
    parts: int = 1


@dataclass(frozen=True, slots=True)
class Rejected:
    """Refused before anything was stored or charged.

    ``http_text`` is the per-recipient text of the HTTP API ("For message: …");
    ``smpp_status`` the ``command_status`` for an SMPP ``submit_sm_resp``.
    """

    reason: str
    smpp_status: int
    http_text: str


Result = Accepted | Rejected


def _rejected(reason: Reason, smpp_status: int, text: str) -> Rejected:
    return Rejected(str(reason), smpp_status, f"For message: {text}")


def _invalid_destination(destination: str) -> Rejected:
    return _rejected(Reason.INVALID_DESTINATION, ESME_RINVDSTADR,
                     f"invalid destination number {destination!r}")


@dataclass(frozen=True, slots=True)
class Fanout:
    """One message to many numbers: ``template`` once per destination (its own
    ``destination`` is not used), for :meth:`Pipeline.submit_fanouts`.

    ``msisdns``, when given, holds :meth:`Pipeline.normalise` of each destination
    (None: not a valid number), for a caller that already normalised them (the
    HTTP API does, to drop repeated recipients): the pipeline then trusts them.
    """

    template: Submission
    destinations: Sequence[str]
    msisdns: Sequence[str | None] | None = None


_CHARGE_REASONS: dict[str, tuple[Reason, int]] = {
    pricing.NO_RATE: (Reason.NO_RATE, ESME_RINVDSTADR),
    pricing.INSUFFICIENT: (Reason.INSUFFICIENT_BALANCE, ESME_RSUBMITFAIL),
    pricing.BLOCKED: (Reason.PARTNER_BLOCKED, ESME_RSUBMITFAIL),
    pricing.BAD_DESTINATION: (Reason.UNKNOWN_NETWORK, ESME_RINVDSTADR),
}


def _refusal(result: ChargeResult) -> Rejected:
    """The pipeline's answer for a message billing refused."""
    reason, status = _CHARGE_REASONS.get(result.code, (Reason.REFUSED, ESME_RSUBMITFAIL))
    return _rejected(reason, status, result.reason)


@dataclass(slots=True)
class _Cached:
    revision: int
    value: object
    checked: float


@dataclass(frozen=True, slots=True)
class _Counted:
    parts: int
    encoding: str
    data_coding: int


class Pipeline:
    """Validate → look up → count → route → charge + store + enqueue (``gateway/accept/README.md``)."""

    def __init__(
        self, pool: asyncpg.Pool, redis: object, settings: Settings, *,
        writer: MessageWriter | None = None, charger: Charger | None = None,
        numbers: NumberRules | None = None, refresh_every: float = 5.0,
        batch_rows: int = 4000, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.settings = settings
        self._owns_writer = writer is None
        # Several API requests (700 rows each) share one transaction: fewer, larger
        # batches spend fewer statements and WAL flushes. Charging locks the partner's
        # row only for the final debit (billing.charging), so one partner's batches overlap.
        self.writer = writer or MessageWriter(
            pool, charger or Charger(), max_rows=batch_rows,
            max_pending_rows=max(20000, 5 * batch_rows),
        )
        self.numbers = numbers or NumberRules()
        self._refresh_every = refresh_every
        self._clock = clock
        self._refbook: _Cached | None = None
        self._routes: _Cached | None = None
        self._world: PrefixTable | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[list[NewMessage]], None]] = []

    async def start(self) -> None:
        if self._owns_writer:
            await self.writer.start()

    async def stop(self) -> None:
        if self._owns_writer:
            await self.writer.stop()

    def add_listener(self, listener: Callable[[list[NewMessage]], None]) -> None:
        """Call ``listener(accepted_messages)`` after each commit (e.g. wake the send workers)."""
        self._listeners.append(listener)

    def invalidate(self) -> None:
        """Check the reference book and routes on the next batch instead of within seconds."""
        self._refbook = None
        self._routes = None

    def normalise(self, raw: str) -> str | None:
        """The E.164 digits of a destination, or None when it is not a valid number."""
        return self.numbers.normalise(raw)

    # -- reference data, held in memory --------------------------------------------------

    async def _tables(self, conn: asyncpg.Connection) -> tuple[PrefixTable, routing.RoutingTable]:
        now = self._clock()
        refbook, routes = self._refbook, self._routes
        if (refbook is None or routes is None or now - refbook.checked > self._refresh_every
                or now - routes.checked > self._refresh_every):
            async with self._lock:
                refbook = await self._fresh_refbook(conn, now)
                routes = await self._fresh_routes(conn, now)
        return refbook.value, routes.value  # type: ignore[return-value]

    async def _fresh_refbook(self, conn: asyncpg.Connection, now: float) -> _Cached:
        cached = self._refbook
        if cached is not None and now - cached.checked <= self._refresh_every:
            return cached
        rev = await refbook_revision(conn)
        if cached is None or cached.revision != rev:
            rev, table = await load_prefix_table(conn)
            if not len(table):
                # A fresh install has an empty book: use the world table the package
                # builds from phonenumbers (MCC known, MNC not) until the owner imports one.
                if self._world is None:
                    self._world = PrefixTable(await asyncio.to_thread(default_entries))
                table = self._world
            cached = _Cached(rev, table, now)
        else:
            cached.checked = now
        self._refbook = cached
        return cached

    async def _fresh_routes(self, conn: asyncpg.Connection, now: float) -> _Cached:
        cached = self._routes
        if cached is not None and now - cached.checked <= self._refresh_every:
            return cached
        rev = await routing.revision(conn)
        if cached is None or cached.revision != rev:
            rev, table = await routing.load_table(conn)
            cached = _Cached(rev, table, now)
        else:
            cached.checked = now
        self._routes = cached
        return cached

    # -- the path -----------------------------------------------------------------------

    def _check_content(self, s: Submission) -> Rejected | None:
        """Checks without I/O that do not look at the destination: the refusal, or None."""
        if s.channel not in CHANNELS:
            return _rejected(Reason.BAD_CHANNEL, ESME_RSUBMITFAIL, f"unknown channel {s.channel!r}")
        if s.origin not in ORIGINS:
            raise ValueError(f"unknown origin {s.origin!r}")  # a programming error, not input
        if not s.text or not s.text.strip():
            if not (s.channel == "viber" and s.image_url):
                return _rejected(Reason.EMPTY_MESSAGE, ESME_RINVMSGLEN, "message is empty")
        if s.channel == "viber" and len(s.text) > VIBER_MAX_CHARS:
            return _rejected(Reason.TOO_LONG, ESME_RINVMSGLEN,
                             f"a Viber message has at most {VIBER_MAX_CHARS} characters")
        if s.flash and s.channel != "sms":
            return _rejected(Reason.FLASH_NOT_SMS, ESME_RINVESMCLASS,
                             "flash messages exist only on SMS")
        if s.flash and s.accept_mo:
            return _rejected(Reason.MO_WITH_FLASH, ESME_RINVESMCLASS,
                             "MO messages are not supported in FlashMessages!")
        if s.fallback_channel is not None and (s.channel, s.fallback_channel) != ("viber", "sms"):
            return _rejected(Reason.BAD_CASCADE, ESME_RSUBMITFAIL,
                             "only a Viber message may fall back to SMS")
        return None

    async def submit(self, batch: Sequence[Submission]) -> list[Result]:
        """Take a batch of messages; one :data:`Result` per submission, in order."""
        return await self._submit([(s, (s.destination,), None) for s in batch])

    async def submit_fanouts(self, fanouts: Sequence[Fanout]) -> list[Result]:
        """Each fanout's template once per destination, in one batch; one :data:`Result` per
        destination, fanout after fanout.

        The same as :meth:`submit` of every template copied to each destination
        (:func:`for_destinations`), at a fraction of the cost: what depends only on
        the template (content checks, sender, MO, segments) is decided once per fanout.
        """
        return await self._submit([(f.template, f.destinations, f.msisdns) for f in fanouts])

    async def _submit(
        self, groups: Sequence[tuple[Submission, Sequence[str], Sequence[str | None] | None]]
    ) -> list[Result]:
        results: list[Result | None] = []
        # (template, its live destinations as (result slot, msisdn)); a template whose
        # content is refused refuses each of its destinations alike.
        plans: list[tuple[Submission, list[tuple[int, str]]]] = []
        live_count = 0
        normalise = self.numbers.normalise
        for template, destinations, msisdns in groups:
            refused = self._check_content(template)
            if refused is not None:
                results += [refused] * len(destinations)
                continue
            if msisdns is None:
                msisdns = [normalise(d) for d in destinations]
            live: list[tuple[int, str]] = []
            for destination, msisdn in zip(destinations, msisdns, strict=True):
                if msisdn is None:
                    results.append(_invalid_destination(destination))
                else:
                    live.append((len(results), msisdn))
                    results.append(None)
            if live:
                plans.append((template, live))
                live_count += len(live)
        if not live_count:
            return results  # type: ignore[return-value]

        now = datetime.now(UTC)
        usable, mo_enabled, blocked, (prefixes, routes) = await self._look_up(plans, now)

        counted: dict[tuple[str, bool], _Counted | Rejected] = {}
        msgs: list[NewMessage] = []
        slots: list[int] = []
        next_id = iter(new_message_ids(live_count)).__next__
        lookup, choose = prefixes.lookup, routes.choose
        for s, live in plans:
            partner_id, sender, channel = s.partner_id, s.sender, s.channel
            if (partner_id, channel, sender) not in usable or (
                s.fallback_channel and (partner_id, s.fallback_channel, sender) not in usable
            ):
                refused = _rejected(Reason.INVALID_SENDER, ESME_RINVSRCADR,
                                    f"can't validate sender {sender}")
            elif s.accept_mo and partner_id not in mo_enabled:
                refused = _rejected(Reason.MO_DISABLED, ESME_RSUBMITFAIL,
                                    "Partner's MO messages mode is off!")
            else:
                refused = None
            if refused is not None:
                for i, _ in live:
                    results[i] = refused
                continue
            # Refuses only the destinations that pass the checks below (their order is kept).
            count = self._count(s, counted)
            fallback_ttl = ((s.fallback_ttl or self.settings.viber_fallback_ttl)
                            if s.fallback_channel else None)
            for i, msisdn in live:
                if blocked and (partner_id, sender, msisdn) in blocked:
                    results[i] = _rejected(Reason.STOPPED, ESME_RSUBMITFAIL,
                                           f"{msisdn} is on the stop list of {sender}")
                    continue
                network = lookup(msisdn)
                if network is None:
                    results[i] = _rejected(Reason.UNKNOWN_NETWORK, ESME_RINVDSTADR,
                                           f"no network known for {msisdn}")
                    continue
                mccmnc = network.mccmnc
                route = choose(channel, msisdn, mccmnc)
                if not route:
                    results[i] = _rejected(Reason.NO_ROUTE, ESME_RINVDSTADR,
                                           f"no route for {channel.upper()} to {mccmnc}")
                    continue
                if isinstance(count, Rejected):
                    results[i] = count
                    continue
                msgs.append(new_message(s, msisdn, next_id(), mccmnc, route, count, now,
                                        fallback_ttl))
                slots.append(i)

        if msgs:
            outcomes = await self.writer.persist(msgs)
            accepted: list[NewMessage] = []
            for i, outcome in zip(slots, outcomes, strict=True):
                if isinstance(outcome, NewMessage):
                    results[i] = Accepted(outcome.id, outcome.parts)
                    accepted.append(outcome)
                else:
                    results[i] = _refusal(outcome)
            if accepted:
                for listener in self._listeners:
                    try:
                        listener(accepted)
                    except Exception:
                        log.exception("event=pipeline_listener_failed")
        return results  # type: ignore[return-value]

    def _count(self, s: Submission, counted: dict) -> _Counted | Rejected:
        if s.parts is not None:
            return _Counted(s.parts, s.encoding or "gsm7", s.data_coding or 0)
        if s.channel == "viber":
            return _Counted(1, "utf8", 0)
        key = (s.text, s.flash)
        hit = counted.get(key)
        if hit is None:
            seg = count_segments(s.text, flash=s.flash)
            if seg.parts > MAX_PARTS:
                hit = _rejected(Reason.TOO_LONG, ESME_RINVMSGLEN,
                                f"the message needs {seg.parts} parts; at most {MAX_PARTS} are possible")
            else:
                hit = _Counted(seg.parts, str(seg.encoding), seg.data_coding)
            counted[key] = hit
        return hit

    async def _look_up(
        self, plans: list[tuple[Submission, list[tuple[int, str]]]], now: datetime
    ) -> tuple[set[tuple[int, str, str]], set[int], set[tuple[int, str, str]],
               tuple[PrefixTable, routing.RoutingTable]]:
        """Usable senders, partners with MO on, stopped numbers, and the reference tables.

        The two statements every batch needs (senders, stop list) run side by side on
        two connections: each round trip is a wait in the submitter's latency.
        """
        wanted: set[tuple[int, str, str]] = set()
        mo_partners = set()
        for s, _ in plans:
            wanted.add((s.partner_id, s.channel, s.sender))
            if s.fallback_channel:
                wanted.add((s.partner_id, s.fallback_channel, s.sender))
            if s.accept_mo:
                mo_partners.add(s.partner_id)
        stop_items = [(t.partner_id, t.sender, msisdn) for t, live in plans for _, msisdn in live]

        async def senders_and_mo() -> tuple[set[tuple[int, str, str]], set[int]]:
            async with self.pool.acquire() as conn:
                return await senders.usable(conn, wanted, now), await self._mo_enabled(conn, mo_partners)

        async def stopped_and_tables() -> tuple[set[tuple[int, str, str]],
                                                tuple[PrefixTable, routing.RoutingTable]]:
            async with self.pool.acquire() as conn:
                return await stoplist.stopped(conn, stop_items), await self._tables(conn)

        (usable, mo_enabled), (blocked, tables) = await asyncio.gather(senders_and_mo(), stopped_and_tables())
        return usable, mo_enabled, blocked, tables

    async def _mo_enabled(self, conn: asyncpg.Connection, partner_ids: set[int]) -> set[int]:
        if not partner_ids:
            return set()
        rows = await conn.fetch(
            "SELECT id FROM partners WHERE id = ANY($1::bigint[]) AND mo_enabled", list(partner_ids)
        )
        return {r["id"] for r in rows}


def new_message(s: Submission, destination: str, message_id: uuid.UUID, mccmnc: str,
                route: tuple[int, ...], count: _Counted, now: datetime, fallback_ttl: int | None
                ) -> NewMessage:
    """The message to store for ``s`` to one checked ``destination`` (E.164 digits), priced
    on ``mccmnc``'s rates and sent along ``route``: PREPARED, its charge not filled in yet."""
    return NewMessage(
        partner_id=s.partner_id, origin=s.origin, sender=s.sender, destination=destination,
        text=s.text, channel=s.channel, id=message_id, user_id=s.user_id,
        api_key_id=s.api_key_id, smpp_account_id=s.smpp_account_id, smpp_session=s.smpp_session,
        mccmnc=mccmnc, parts=count.parts, encoding=count.encoding, data_coding=count.data_coding,
        flash=s.flash, accept_mo=s.accept_mo, label=s.label, campaign_id=s.campaign_id,
        client_ref=s.client_ref, status=Status.PREPARED,
        registered_delivery=s.registered_delivery, callback_url=s.callback_url or None,
        valid_until=s.valid_until, created_at=now, traffic_type=_traffic(s),
        fallback_channel=s.fallback_channel, fallback_ttl=fallback_ttl, image_url=s.image_url,
        button_url=s.button_url, button_caption=s.button_caption, scheduled_for=s.scheduled_for,
        smpp_data_coding=s.smpp_data_coding, service_type=s.service_type,
        concat_ref=s.concat_ref, concat_total=s.concat_total, concat_seq=s.concat_seq,
        concat_wide=s.concat_wide, udhi=s.udhi, fallback_for=s.fallback_for, route=route,
    )


def _traffic(s: Submission) -> str | None:
    if s.channel != "viber":
        return None
    # Spec §12.2 "trafficType": a button or an image makes a message PROMOTION.
    if s.image_url or s.button_url:
        return "promotion"
    return "transaction" if (s.traffic_type or "").lower().startswith("trans") else "promotion"


def normalise_msisdn(raw: str, rules: NumberRules | None = None) -> str | None:
    """E.164 digits of ``raw`` or None (builds the rules when not given: prefer a Pipeline's)."""
    return (rules or NumberRules()).normalise(raw)


__all__ = [
    "Accepted", "Fanout", "Pipeline", "Reason", "Rejected", "Result",
    "Submission", "for_destinations", "new_message", "normalise_msisdn",
]
