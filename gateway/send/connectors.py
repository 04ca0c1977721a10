"""Carrier connectors: one SMPP bind per vendor, fed from the send queue, with its
throttle, receipts and MO; exclusive binds held through an advisory lock. What each
vendor answer leads to: ``gateway/send/README.md``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg

from billing.vendors import Vendor, enabled_vendors
from gateway.base import tasks
from gateway.base.app import task_health
from gateway.base.ratelimit import TokenBucket
from gateway.report import early_receipts
from gateway.report.status import LocalOutbox
from gateway.send import bindstatus
from gateway.send.delivery import (
    Accepted,
    Failover,
    ReceiptUpdate,
    ReceiptWriter,
    Retry,
    SendResult,
    SendWorker,
)
from gateway.send.delivery import Rejected as SendRejected
from gateway.store import queue
from gateway.store.messages import FINAL, Event, Message, find_by_vendor_id
from smpp.client import ClientConfig, ClientHandler, SmppClient
from smpp.encoding import UnencodableError
from smpp.pdu import CommandStatus, DataSm, DeliverSm, MessageState, SubmitSm, Tag
from smpp.receipts import message_id_keys, receipt_status, state_from_tlv
from smpp.results import Outcome, RequestResult
from smpp.segments import ConcatMethod, EncodedText, encode_text, part_limits, split_message
from smpp.session import BindType, SessionConfig
from smpp.times import format_absolute
from smpp.udh import concat_udh

log = logging.getLogger("herald.connectors")
S = CommandStatus

RETRYABLE = frozenset({S.ESME_RTHROTTLED, S.ESME_RMSGQFUL, S.ESME_RX_T_APPN, S.ESME_RSYSERR})

# SMPP 3.4 §5.2.28 message_state → the event it means for the EDR (None: not final, ignore).
_EVENTS: dict[MessageState, Event | None] = {
    MessageState.DELIVERED: Event.DELIVERED,
    MessageState.EXPIRED: Event.EXPIRED,
    MessageState.DELETED: Event.UNDELIVERED,
    MessageState.UNDELIVERABLE: Event.UNDELIVERED,
    MessageState.REJECTED: Event.UNDELIVERED,
    MessageState.UNKNOWN: Event.UNDELIVERED,
    MessageState.ENROUTE: None,
    MessageState.ACCEPTED: None,
}


@dataclass(frozen=True, slots=True)
class ConnectorOptions:
    """Timings, kept short in tests."""

    response_timeout: float = 10.0
    enquire_link: float = 30.0
    reconnect_base: float = 1.0
    reconnect_cap: float = 30.0
    lease: float = 60.0
    poll_interval: float = 0.5
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    bound_wait: float = 5.0
    receipt_match_retries: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0)
    status_ttl: int = 35  # bind state in Redis outlives a few refreshes (Connectors.refresh)
    lock_retry: float = 2.0  # exclusive binds: how often a standby process tries the lock


# First half of every exclusive-bind advisory key ("HRLD"): keeps Herald's vendor locks
# apart from any other advisory lock user of the same database.
BIND_LOCK_SPACE = 0x48524C44


def bind_lock_key(vendor_id: int) -> int:
    """The advisory lock key (a signed 64-bit integer) that owns ``vendor_id``'s exclusive bind."""
    return (BIND_LOCK_SPACE << 32) | (vendor_id & 0xFFFFFFFF)


def receipt_event(pdu: DeliverSm | DataSm) -> tuple[str | None, Event | None, str | None]:
    """(receipted id, event, error code) of a receipt PDU; TLVs win over the text."""
    tlv_id = pdu.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)
    tlv_state = pdu.tlvs.get(Tag.MESSAGE_STATE)
    parsed = receipt_status(getattr(pdu, "short_message", b"") or pdu.tlvs.get(Tag.MESSAGE_PAYLOAD, b""))
    message_id = (tlv_id.decode() if isinstance(tlv_id, bytes) else tlv_id) or (
        parsed[0] if parsed else None)
    if tlv_state is not None:
        state = state_from_tlv(tlv_state)
    elif parsed is not None:
        state = parsed[1]
    else:
        return message_id, None, None
    return message_id, _EVENTS.get(state), parsed[2] if parsed else None


def _addr(value: str) -> tuple[int, int]:
    """(TON, NPI) of an address, SMPP 3.4 §5.2.5/§5.2.6: digits are international ISDN."""
    if value.isdigit():
        return 1, 1
    return 5, 0  # alphanumeric sender ID


def build_submits(message: Message, reference: int) -> list[SubmitSm]:
    """The ``submit_sm`` PDUs that carry ``message`` (pure; raises UnencodableError)."""
    src_ton, src_npi = _addr(message.sender)
    base = dict(
        source_addr_ton=src_ton, source_addr_npi=src_npi, source_addr=message.sender,
        dest_addr_ton=1, dest_addr_npi=1, destination_addr=message.destination,
        registered_delivery=1,  # Herald always needs the final receipt (status, billing)
    )
    if message.valid_until is not None:
        # The carrier gives up when we would have: no delivery after the client's deadline.
        with contextlib.suppress(ValueError):
            base["validity_period"] = format_absolute(message.valid_until)
    if message.encoding == "binary":
        # Passed through as the SMPP client wrote it (gateway.intake.smpp_server): hex octets.
        data = bytes.fromhex(message.text)
        pdu = SubmitSm(**base, esm_class=0x40 if message.udhi else 0,
                       data_coding=message.data_coding)
        if len(data) > 254:
            pdu.tlvs[Tag.MESSAGE_PAYLOAD] = data  # SMPP 3.4 §5.3.2.32
        else:
            pdu.short_message = data
        return [pdu]
    try:
        encoded = encode_text(message.text, message.encoding, flash=message.flash)
    except (UnencodableError, ValueError):
        encoded = encode_text(message.text, "ucs2", flash=message.flash)
    if message.concat_total is not None:
        # A part the SMPP client split itself: sent with the same concatenation header.
        udh = concat_udh(message.concat_ref, message.concat_total, message.concat_seq,
                         wide_reference=bool(message.concat_wide))
        return [SubmitSm(**base, esm_class=0x40, data_coding=encoded.data_coding,
                         short_message=udh + encoded.payload)]
    if encoded.units <= part_limits(encoded.encoding, ConcatMethod.UDH8)[0]:
        # One SMS (most traffic): what split_message would make, without its bookkeeping.
        return [SubmitSm(**base, data_coding=encoded.data_coding, short_message=encoded.payload)]
    split = split_message(EncodedText(encoded.encoding, encoded.data_coding, encoded.payload,
                                      encoded.units, encoded.text), reference=reference)
    pdus = []
    for seg in split.segments:
        pdu = SubmitSm(**base, esm_class=0x40 if seg.udhi else 0, data_coding=split.data_coding,
                       short_message=seg.short_message)
        if seg.message_payload is not None:
            pdu.tlvs[Tag.MESSAGE_PAYLOAD] = seg.message_payload
        pdus.append(pdu)
    return pdus


def classify(results: list[RequestResult]) -> SendResult:
    """The SendWorker answer for the results of a message's parts."""
    accepted = [r for r in results if r.outcome is Outcome.ACCEPTED and r.message_id]
    if accepted:
        ids = [r.message_id or "" for r in accepted]
        if len(ids) == 1:
            return Accepted(ids[0])  # one part: its keys are the id's own
        return Accepted(ids[0], tuple(sorted({k for i in ids for k in message_id_keys(i)})))
    first = results[0]
    if first.outcome is Outcome.REJECTED:
        status = first.status or 0
        if status in RETRYABLE:
            return Retry(f"vendor answered 0x{status:08x}")
        return Failover(f"vendor refused: 0x{status:08x}", f"{status:08x}")
    return Retry(f"{first.outcome.value}: {first.reason}")


def _classify_into(answer: asyncio.Future[SendResult], results: asyncio.Future) -> None:
    """Settle ``answer`` with the classified result(s) of a message's part(s)."""
    if answer.done():
        return
    if results.cancelled():
        answer.set_result(Retry("send cancelled"))
    elif (exc := results.exception()) is not None:
        answer.set_exception(exc)
    else:
        got = results.result()
        answer.set_result(classify(got if isinstance(got, list) else [got]))


class _GatedWorker(SendWorker):
    """A SendWorker that claims nothing while its vendor bind is down."""

    def __init__(self, *args, ready: Callable[[], bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ready = ready

    async def run_once(self) -> int:
        if not self._ready():
            return 0
        return await super().run_once()


class VendorConnector(ClientHandler):
    """One vendor: its bind, its throttle, its send worker, its receipts and MO."""

    def __init__(
        self, pool: asyncpg.Pool, redis: object, vendor: Vendor, *, receipts: ReceiptWriter,
        outbox: LocalOutbox | None = None, mo=None, options: ConnectorOptions | None = None,
    ) -> None:
        """``outbox``: this process's SMPP outbox dispatcher, if any (receipts to SMPP
        clients bound here are handed to it)."""
        self.pool = pool
        self.redis = redis
        self.vendor = vendor
        self._state: tuple[str, str, float] = (bindstatus.CONNECTING, "", time.time())
        self.receipts = receipts
        self.mo = mo
        self.options = opts = options or ConnectorOptions()
        self.bucket = TokenBucket(redis, f"vendor:{vendor.id}", rate=float(vendor.tps),
                                  burst=max(1.0, min(float(vendor.tps), vendor.window_size * 2.0)))
        self._refs = itertools.count(1)
        self._chunk = max(1, min(int(self.bucket.burst), vendor.tps // 20))
        self._tokens = 0
        self._token_lock = asyncio.Lock()
        self._owner: asyncio.Task | None = None
        self.owns_lock = False
        self.client = self._make_client()
        self.worker = _GatedWorker(
            pool, self.send, vendor_id=vendor.id, batch=max(20, vendor.window_size * 2),
            lease=opts.lease, poll_interval=opts.poll_interval, max_attempts=opts.max_attempts,
            backoff_base=opts.backoff_base, backoff_cap=opts.backoff_cap, outbox=outbox,
            ready=lambda: self.client.is_bound, start=self.start_send,
        )

    def _make_client(self) -> SmppClient:
        # A closed SmppClient does not reopen: an exclusive bind makes a new one per ownership.
        vendor, opts = self.vendor, self.options
        return SmppClient(
            ClientConfig(
                host=vendor.smpp_host or "127.0.0.1", port=vendor.smpp_port or 2775,
                system_id=vendor.system_id or "", password=vendor.password or "",
                system_type=vendor.system_type, bind_type=BindType(vendor.bind_type),
                # Receipts and MO arrive as fast as the vendor likes; each waits for its commit.
                # A small peer window would answer them ESME_RTHROTTLED and invite resends.
                session=SessionConfig(window=vendor.window_size, peer_window=5000,
                                      enquire_link_interval=opts.enquire_link,
                                      response_timeout=opts.response_timeout),
                reconnect_base=opts.reconnect_base, reconnect_cap=opts.reconnect_cap,
                throttle=self._throttle, name=f"vendor-{vendor.id}", tick_interval=0.5,
            ),
            self,
        )

    async def _throttle(self) -> None:
        # Tokens come from Redis in chunks of at most 1/20 s of the vendor's rate: one round
        # trip per chunk instead of per PDU, and never more connections than one per vendor.
        if self._tokens > 0:
            self._tokens -= 1
            return
        async with self._token_lock:
            if self._tokens <= 0:
                await self.bucket.acquire(self._chunk)
                self._tokens = self._chunk
            self._tokens -= 1

    async def start(self) -> None:
        await self._report(bindstatus.CONNECTING, "starting")
        if self.vendor.exclusive_bind:
            self._owner = asyncio.create_task(self._own_bind(), name=f"vendor-{self.vendor.id}:lock")
        else:
            await self.client.start()
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        if self._owner is not None:
            self._owner.cancel()  # its cleanup unbinds, then gives the lock up
            with contextlib.suppress(asyncio.CancelledError):
                await self._owner
            self._owner = None
        else:
            await self.client.close(grace=2.0)
        with contextlib.suppress(Exception):
            await bindstatus.withdraw(self.redis, self.vendor.id)

    async def _own_bind(self) -> None:
        """Bind only while this process holds the vendor's advisory lock (exclusive binds)."""
        key = bind_lock_key(self.vendor.id)
        retry = self.options.lock_retry
        while True:
            try:
                async with self.pool.acquire() as conn:
                    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                        await self._report(bindstatus.STANDBY, "another process holds the bind")
                    else:
                        await self._hold(conn, key)
            except Exception:
                log.warning("event=bind_lock_trouble vendor=%s", self.vendor.id, exc_info=True)
            await asyncio.sleep(retry)

    async def _hold(self, conn: asyncpg.Connection, key: int) -> None:
        """Own the bind on ``conn`` until that connection fails (or the task is cancelled)."""
        lost = asyncio.Event()

        def on_close(_conn) -> None:
            lost.set()

        conn.add_termination_listener(on_close)
        self.owns_lock = True
        log.info("event=bind_lock_taken vendor=%s", self.vendor.id)
        self.client = self._make_client()
        try:
            await self.client.start()
            while True:
                # The session ending (socket closed, backend terminated) releases the lock in
                # PostgreSQL: stop binding as soon as we notice either sign of it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.options.lock_retry / 2)
                if lost.is_set():
                    raise ConnectionError("lock connection closed")
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self.options.lock_retry)
        finally:
            # Unbind first, then let the lock go: a successor never binds next to us.
            self.owns_lock = False
            await self.client.close(grace=2.0)
            conn.remove_termination_listener(on_close)
            if not lost.is_set() and not conn.is_closed():
                try:
                    await asyncio.wait_for(
                        asyncio.shield(conn.execute("SELECT pg_advisory_unlock($1)", key)), 2.0)
                except BaseException:
                    # The pool does not reset sessions (gateway.base.app.open_pool): a connection
                    # that may still hold the lock must not go back to it.
                    conn.terminate()
                    raise

    async def _report(self, state: str, reason: str = "") -> None:
        """Publish the bind state for the Admin Panel; never let Redis trouble stop sending."""
        if state != self._state[0] or reason != self._state[1]:
            self._state = (state, reason, time.time())
        try:
            await bindstatus.publish(self.redis, self.vendor.id, state, reason,
                                     ttl=self.options.status_ttl, since=self._state[2])
        except Exception:
            log.warning("event=bind_status_unpublished vendor=%s", self.vendor.id, exc_info=True)

    async def refresh_status(self) -> None:
        await self._report(*self._state[:2])

    def notify(self) -> None:
        self.worker.notify()

    # -- sending --------------------------------------------------------------------------

    async def send(self, claim: queue.Claim) -> SendResult:
        return await (await self.start_send(claim))

    async def start_send(self, claim: queue.Claim) -> asyncio.Future[SendResult]:
        """Write the message's ``submit_sm`` PDUs; the future of what the vendor answered
        (:func:`classify`). Raises what :meth:`smpp.client.SmppClient.send` raises."""
        message = claim.message
        assert message is not None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[SendResult] = loop.create_future()
        if self.vendor.bind_type == "receiver":
            answer.set_result(Failover("vendor bind is receive-only"))
            return answer
        if not self.client.is_bound:
            try:
                await asyncio.wait_for(self.client.wait_bound(), self.options.bound_wait)
            except (TimeoutError, Exception):
                answer.set_result(Retry("vendor not bound", delay=2.0))
                return answer
        try:
            pdus = build_submits(message, next(self._refs) % 256)
        except ValueError as exc:
            answer.set_result(SendRejected(f"cannot encode the message: {exc}"))
            return answer
        futures = [await self.client.send(pdu, context=message.id) for pdu in pdus]
        # Futures only (gather of futures makes no task): classified when all answered.
        both = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
        both.add_done_callback(partial(_classify_into, answer))
        return answer

    # -- ClientHandler ------------------------------------------------------------------

    async def bound(self) -> None:
        log.info("event=vendor_bound vendor=%s", self.vendor.id)
        await self._report(bindstatus.BOUND)
        self.worker.notify()

    async def unbound(self, reason: str) -> None:
        await self._report(bindstatus.CONNECTING, reason)

    async def bind_failed(self, status: int | None, reason: str) -> None:
        await self._report(bindstatus.FAILED, reason)

    async def receipt(self, pdu: DeliverSm | DataSm) -> int | None:
        message_id, event, error = receipt_event(pdu)
        if not message_id or event is None:
            return None  # an intermediate notification, or nothing we can match
        update = ReceiptUpdate(self.vendor.id, message_id, event, datetime.now(UTC), error)
        for delay in (*self.options.receipt_match_retries, None):
            if await self.receipts.record(update) is not None:
                return None
            async with self.pool.acquire() as conn:
                found = await find_by_vendor_id(conn, self.vendor.id, message_id)
            if found is not None and found.status in FINAL:
                return None  # a repeat, or an event after the final one: nothing to do
            if found is None:
                if delay is None:
                    break
                # The receipt overtook our own record of the submit_sm_resp: look again soon.
                await asyncio.sleep(delay)
            # else: the record committed between our two looks; apply the receipt again.
        # Still unknown: keep the receipt and answer the vendor only once it is stored;
        # housekeeping applies it again when the submit_sm_resp is recorded.
        await early_receipts.store(self.pool, update)
        log.info("event=receipt_kept_early vendor=%s id=%s", self.vendor.id, message_id)
        return None

    async def message(self, pdu: DeliverSm | DataSm) -> int | None:
        if self.mo is None:
            return None
        return await self.mo.receive_pdu(self.vendor.id, pdu)


class Connectors:
    """The process's vendor connectors (a service: ``start`` / ``stop``)."""

    name = "vendor_connectors"  # in /healthz

    def __init__(
        self, pool: asyncpg.Pool, redis: object, *, outbox: LocalOutbox | None = None, mo=None,
        options: ConnectorOptions | None = None, refresh: float = 10.0,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.outbox = outbox
        self.mo = mo
        self.options = options or ConnectorOptions()
        self.refresh = refresh
        self.receipts = ReceiptWriter(pool, outbox=outbox)
        self.connectors: dict[int, VendorConnector] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.receipts.start()
        await self.sync()
        self._task = asyncio.create_task(self._refresher(), name="connectors-refresh")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        await asyncio.gather(*(c.stop() for c in self.connectors.values()), return_exceptions=True)
        self.connectors.clear()
        await self.receipts.stop()

    def health(self) -> str:
        """``"ok"`` while the refresher that keeps a connector per vendor runs (``/healthz``).

        A vendor's bind being down is the vendor's state (``gateway.send.bindstatus``), not this
        process's: it does not make the process unready."""
        return task_health(self._task)

    def notify(self, _messages=None) -> None:
        """New messages were queued (a pipeline listener): wake every worker."""
        for connector in self.connectors.values():
            connector.notify()

    async def sync(self) -> None:
        """Start connectors for new vendors, restart changed ones, stop disabled ones."""
        async with self.pool.acquire() as conn:
            vendors = {v.id: v for v in await enabled_vendors(conn, "sms") if v.protocol == "smpp"}
        for vid in [v for v in self.connectors if v not in vendors
                    or vendors[v].updated_at != self.connectors[v].vendor.updated_at]:
            await self.connectors.pop(vid).stop()
        for vid, vendor in vendors.items():
            if vid not in self.connectors:
                connector = VendorConnector(self.pool, self.redis, vendor, receipts=self.receipts,
                                            outbox=self.outbox, mo=self.mo, options=self.options)
                self.connectors[vid] = connector
                await connector.start()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self.sync()
                for connector in self.connectors.values():
                    await connector.refresh_status()
            except Exception:
                log.exception("event=connectors_refresh_failed")
