"""Viber connectors: the send queue to Viber providers over HTTP, and the status
webhook that brings their reports back (``gateway/send/README.md``)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
from aiohttp import web

from billing.vendors import Vendor, enabled_vendors
from config.settings import Settings
from gateway.base import tasks
from gateway.base.app import DB, SETTINGS, task_health
from gateway.base.ratelimit import TokenBucket
from gateway.report import early_receipts
from gateway.report.fallback import NOT_SENT, fallback_due
from gateway.send.delivery import (
    Accepted,
    Failover,
    ReceiptWriter,
    Rejected,
    Retry,
    SendResult,
    SendWorker,
)
from gateway.store import queue
from gateway.store.messages import (
    FINAL,
    Event,
    Message,
    NewMessage,
    ReceiptUpdate,
    find_by_vendor_id,
)
from viber.client import ViberClient
from viber.provider import (
    BadReport,
    Permanent,
    ProviderError,
    Throttled,
    ViberMessage,
    parse_status_report,
)

log = logging.getLogger("herald.viber")

_EVENTS = {
    "delivered": Event.DELIVERED,
    "seen": Event.SEEN,
    "undelivered": Event.UNDELIVERED,
    "expired": Event.EXPIRED,
    "failed": Event.FAILED,
}


@dataclass(frozen=True, slots=True)
class ViberOptions:
    """Timings of the Viber connectors (tests shorten them; :meth:`from_settings` in a
    process)."""

    request_timeout: float = 10.0
    lease: float = 30.0
    poll_interval: float = 0.5
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    refresh: float = 10.0
    receipt_match_retries: tuple[float, ...] = (0.2, 1.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> ViberOptions:
        """The operator's values: ``HERALD_VIBER_*`` and the vendors' ``HERALD_VENDOR_LEASE``."""
        # A lease shorter than a request would let a second worker send the message while
        # the first still waits for the provider's answer.
        return cls(
            request_timeout=settings.viber_timeout,
            lease=max(settings.vendor_lease, settings.viber_timeout + 5.0),
            max_attempts=settings.viber_max_attempts,
            backoff_cap=settings.viber_backoff_cap,
            refresh=settings.viber_refresh,
        )


def viber_message(message: Message, now: datetime | None = None) -> ViberMessage:
    """What the provider is asked to send for a stored Viber message.

    The TTL asked of the provider: for a cascade, the time left until it falls
    back (:func:`gateway.report.cascade.fallback_due`: a message not delivered by then
    goes as SMS instead, so Viber should stop trying too; a message sent late gets
    what is left, not the whole ``fallback_ttl``); else what is left of the
    validity period (the sooner of the two when both are set); else the
    provider's default. At least one second (the provider raises it to its minimum).
    """
    now = now or datetime.now(UTC)
    ends = [t for t in (fallback_due(message), message.valid_until) if t is not None]
    ttl = max(1, math.ceil((min(ends) - now).total_seconds())) if ends else None
    return ViberMessage(
        sender=message.sender, phone=message.destination, text=message.text,
        traffic_type=message.traffic_type or "promotion", image_url=message.image_url,
        button_url=message.button_url, button_caption=message.button_caption, ttl=ttl,
        reference=str(message.id),
    )


def classify(exc: ProviderError) -> SendResult:
    """The SendWorker answer for a provider error (the table in ``gateway/send/README.md``)."""
    if isinstance(exc, Throttled):
        return Retry(exc.message, delay=exc.retry_after)
    if isinstance(exc, Permanent):
        return Failover(f"provider refused: {exc.message}", exc.code or str(exc.status or ""))
    return Retry(exc.message)


def report_event(status: str) -> Event:
    """The message event of a provider status word (:data:`viber.provider.STATUSES`)."""
    return _EVENTS[status]


class ViberVendor:
    """One Viber provider account: its client, its throttle, its send worker."""

    def __init__(
        self, pool: asyncpg.Pool, redis: object, vendor: Vendor, *,
        session: aiohttp.ClientSession, options: ViberOptions | None = None,
    ) -> None:
        self.vendor = vendor
        self.options = opts = options or ViberOptions()
        self.client = ViberClient(vendor.http_base_url or "", vendor.http_token or "",
                                  session=session, timeout=opts.request_timeout)
        window = max(1, vendor.window_size)
        self.bucket = TokenBucket(redis, f"vendor:{vendor.id}", rate=float(max(1, vendor.tps)),
                                  burst=max(1.0, min(float(vendor.tps), window * 2.0)))
        self.worker = SendWorker(
            pool, self.send, vendor_id=vendor.id, bucket=self.bucket, batch=max(20, window * 2),
            concurrency=window, lease=opts.lease, poll_interval=opts.poll_interval,
            max_attempts=opts.max_attempts, backoff_base=opts.backoff_base,
            backoff_cap=opts.backoff_cap,
        )

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    def notify(self) -> None:
        self.worker.notify()

    async def send(self, claim: queue.Claim) -> SendResult:
        message = claim.message
        assert message is not None
        if message.channel != "viber":
            return Failover("a Viber vendor sends only Viber messages")
        if not self.vendor.http_base_url:
            return Failover("the Viber vendor has no base URL")
        now = datetime.now(UTC)
        due = fallback_due(message)
        if due is not None and due <= now:
            # Claimed only after its cascade fell due (given back by a retry, or a worker
            # that died): the SMS goes instead, so Viber does not (FAILED, refunded).
            return Rejected(NOT_SENT)
        try:
            request = viber_message(message, now)
            message_id = await self.client.send(request)
        except ValueError as exc:
            return Rejected(f"cannot build the Viber message: {exc}")
        except ProviderError as exc:
            log.info("event=viber_send_refused vendor=%s message=%s status=%s error=%s",
                     self.vendor.id, message.id, exc.status, exc.message)
            return classify(exc)
        return Accepted(message_id)


class ViberConnectors:
    """The process's Viber vendors (a service: ``start`` / ``stop``)."""

    name = "viber_connectors"  # in /healthz

    def __init__(
        self, pool: asyncpg.Pool, redis: object, *, options: ViberOptions | None = None,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.options = options or ViberOptions()
        self.vendors: dict[int, ViberVendor] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        # Connections per provider host bounded by each vendor's window, not the session.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        await self.sync()
        self._task = asyncio.create_task(self._refresher(), name="viber-refresh")

    def health(self) -> str:
        """``"ok"`` while the refresher that keeps a sender per Viber vendor runs (``/healthz``)."""
        return task_health(self._task)

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        self._task = None
        await asyncio.gather(*(v.stop() for v in self.vendors.values()), return_exceptions=True)
        self.vendors.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def notify(self, messages: Sequence[NewMessage] | None = None) -> None:
        """New messages were queued (a pipeline listener): wake the workers if any is Viber."""
        if messages is not None and not any(m.channel == "viber" for m in messages):
            return
        for vendor in self.vendors.values():
            vendor.notify()

    async def sync(self) -> None:
        """Start workers for new vendors, restart changed ones, stop disabled ones."""
        assert self._session is not None
        async with self.pool.acquire() as conn:
            vendors = {v.id: v for v in await enabled_vendors(conn, "viber")
                       if v.protocol == "http"}
        for vid in [v for v in self.vendors if v not in vendors
                    or vendors[v].updated_at != self.vendors[v].vendor.updated_at]:
            await self.vendors.pop(vid).stop()
        for vid, vendor in vendors.items():
            if vid not in self.vendors:
                connector = ViberVendor(self.pool, self.redis, vendor, session=self._session,
                                        options=self.options)
                self.vendors[vid] = connector
                await connector.start()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self.options.refresh)
            try:
                await self.sync()
            except Exception:
                log.exception("event=viber_refresh_failed")


# -- status reports (webhook) ----------------------------------------------------------------

VIBER_RECEIPTS = web.AppKey("viber_receipts", ReceiptWriter)
VIBER_OPTIONS = web.AppKey("viber_options", ViberOptions)


def token_matches(header: str, token: str | None) -> bool:
    """``Authorization: Bearer <token>`` for the vendor's token (a vendor with none takes nothing)."""
    if not token:
        return False
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


async def _vendor_token(pool: asyncpg.Pool, vendor_id: int) -> str | None:
    return await pool.fetchval(
        "SELECT http_token FROM vendors WHERE id = $1 AND channel = 'viber' AND protocol = 'http'",
        vendor_id,
    )


async def record_report(
    pool: asyncpg.Pool, writer: ReceiptWriter, update: ReceiptUpdate,
    retries: Sequence[float] = (0.2, 1.0),
) -> str:
    """Apply one status report: ``applied`` (the status moved), ``ignored`` (a repeat, or
    after a final status) or ``kept`` (no such message yet: stored in early_receipts)."""
    found: Message | None = None
    for delay in (*retries, None):
        if await writer.record(update) is not None:
            return "applied"
        async with pool.acquire() as conn:
            found = await find_by_vendor_id(conn, update.vendor_id, update.receipt_message_id)
        if found is not None and found.status in FINAL:
            return "ignored"  # a repeat, or a report after the final one
        if delay is None:
            break
        # Not found: the report overtook our record of the provider's answer. Found but not
        # final: that record committed between our two looks. Either way, again soon.
        await asyncio.sleep(delay)
    if found is not None:
        return "ignored"
    await early_receipts.store(pool, update)
    log.info("event=viber_report_kept_early vendor=%s id=%s", update.vendor_id,
             update.receipt_message_id)
    return "kept"


async def status_webhook(request: web.Request) -> web.Response:
    """``POST /api/viber/status/{vendor_id}``: one provider status report (see :mod:`viber`)."""
    vendor_id = int(request.match_info["vendor_id"])
    pool = request.app[DB]
    token = await _vendor_token(pool, vendor_id)
    if not token_matches(request.headers.get("Authorization", ""), token):
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        report = parse_status_report(await request.read())
    except BadReport as exc:
        return web.json_response({"error": exc.message}, status=400)
    update = ReceiptUpdate(vendor_id, report.message_id, report_event(report.status),
                           report.at or datetime.now(UTC), None, report.error)
    result = await record_report(pool, request.app[VIBER_RECEIPTS], update,
                                 request.app[VIBER_OPTIONS].receipt_match_retries)
    return web.json_response({"result": result})


async def _receipts_ctx(app: web.Application) -> AsyncIterator[None]:
    writer = ReceiptWriter(app[DB])
    await writer.start()
    app[VIBER_RECEIPTS] = writer
    try:
        yield
    finally:
        await writer.stop()


def setup(app: web.Application, options: ViberOptions | None = None) -> None:
    """Route the status webhook and give it its receipt writer for the app's lifetime."""
    if options is None:
        options = ViberOptions.from_settings(app[SETTINGS]) if SETTINGS in app else ViberOptions()
    app[VIBER_OPTIONS] = options
    app.router.add_post(r"/api/viber/status/{vendor_id:\d{1,18}}", status_webhook)
    app.cleanup_ctx.append(_receipts_ctx)
