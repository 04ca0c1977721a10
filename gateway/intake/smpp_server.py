"""Herald's SMPP server: end users' systems bind here and submit into the pipeline.

The rules each request follows are in ``gateway/intake/README.md``; the pure
translation of PDUs is :mod:`gateway.intake.smpp_submits`, receipts and MO going
back to clients are :mod:`gateway.report.smpp_outbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from accounts.users import verify_password
from gateway.accept.pipeline import Accepted, Pipeline, Rejected, Submission
from gateway.intake.smpp_accounts import SmppAccount, bind_verdict, get_by_system_id
from gateway.intake.smpp_limits import AccountThrottle, BindRegistry
from gateway.intake.smpp_submits import (
    S,
    field_refusal,
    query_state,
    replaceable,
    replacement,
    reply_of,
    submission_of,
    timing_of,
)
from gateway.report.smpp_outbox import OutboxDispatcher
from gateway.report.status import LocalOutbox, status_changed
from gateway.store.messages import Event, Status, apply_event, get_message
from smpp.pdu import (
    CancelSm,
    DataSm,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    UnsuccessSme,
)
from smpp.server import (
    BindRequest,
    BindResult,
    ServerConfig,
    ServerHandler,
    ServerSession,
    SmppServer,
)
from smpp.session import SessionConfig
from smpp.times import format_absolute

log = logging.getLogger("herald.smpp")


class _Batcher:
    """Groups concurrent submissions into one pipeline call: at once when none is running,
    else after ``max_delay`` seconds or at ``max_items``."""

    def __init__(self, pipeline: Pipeline, max_delay: float = 0.002, max_items: int = 500) -> None:
        self.pipeline = pipeline
        self.max_delay = max_delay
        self.max_items = max_items
        # (submission, future, as_reply): as_reply futures get the SMPP reply, not the result
        self._items: list[tuple[Submission, asyncio.Future, bool]] = []
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, sub: Submission) -> Accepted | Rejected:
        return await self.enqueue(sub)

    def enqueue(self, sub: Submission, *, as_reply: bool = False) -> asyncio.Future:
        """The future of ``sub``'s pipeline result, or with ``as_reply`` of its SMPP reply
        (:func:`reply_of`; ``ESME_RSYSERR`` when the pipeline failed)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._items.append((sub, future, as_reply))
        if len(self._items) >= self.max_items:
            self._flush()
        elif self._timer is None:
            # Idle: go at the end of this turn of the loop (the rest of the burst just
            # read is already queued before it); busy: let the batch grow a little.
            self._timer = (loop.call_later(self.max_delay, self._flush) if self._tasks
                           else loop.call_soon(self._flush))
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._items = self._items, []
        if items:
            task = asyncio.get_running_loop().create_task(self._run(items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[tuple[Submission, asyncio.Future, bool]]) -> None:
        try:
            results = await self.pipeline.submit([s for s, _, _ in items])
        except Exception as exc:
            if any(as_reply for _, _, as_reply in items):
                log.exception("event=smpp_pipeline_failed count=%d", len(items))
            for _, future, as_reply in items:
                if not future.done():
                    # Nothing stored: the client may send it again.
                    if as_reply:
                        future.set_result(S.ESME_RSYSERR)
                    else:
                        future.set_exception(exc)
            return
        for (_, future, as_reply), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(reply_of(result) if as_reply else result)

    async def drain(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks))


# The newest message replace_if_present_flag replaces: the account's, same sender,
# destination and service_type, one Herald encodes whole, still BILLED in the queue unclaimed.
_PENDING_MATCH = """
SELECT m.id FROM messages m JOIN send_queue q ON q.message_id = m.id
WHERE m.destination = $3 AND m.sender = $2 AND m.smpp_account_id = $1
  AND m.service_type IS NOT DISTINCT FROM $4 AND m.concat_total IS NULL AND m.encoding <> 'binary'
  AND m.status = 'BILLED' AND q.claimed_by IS NULL
ORDER BY m.created_at DESC, m.id DESC LIMIT 1"""


class _KeyLocks:
    """An asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Any, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Any):
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


class HeraldSmppHandler(ServerHandler):
    """Binds against ``smpp_accounts``; submits into the pipeline (``gateway/intake/README.md``)."""

    def __init__(self, pool: asyncpg.Pool, pipeline: Pipeline, *, on_bound: Callable[[], None] | None = None,
                 outbox: LocalOutbox | None = None, binds: BindRegistry | None = None,
                 throttle: AccountThrottle | None = None) -> None:
        self.pool = pool
        self.pipeline = pipeline
        self.binds = binds        # None: max_binds counted in this process only
        self.throttle = throttle  # None: account TPS left to the server's local bucket
        self.batcher = _Batcher(pipeline)
        self.server: SmppServer | None = None
        self.on_bound = on_bound
        self.outbox = outbox  # told of the receipts a take-back writes
        self._verified: dict[tuple[int, str], bytes] = {}
        self._replacing = _KeyLocks()

    async def _password_ok(self, account: SmppAccount, password: str) -> bool:
        # argon2 costs tens of ms of CPU: remember a proven password (as a digest) per hash,
        # so clients that rebind often do not pay it again; a changed hash forgets it.
        digest = hashlib.sha256(password.encode()).digest()
        known = self._verified.get((account.id, account.password_hash))
        if known is not None:
            return hmac.compare_digest(known, digest)
        ok = await asyncio.to_thread(verify_password, account.password_hash, password)
        if ok:
            self._verified[(account.id, account.password_hash)] = digest
        return ok

    async def authenticate(self, request: BindRequest) -> BindResult:
        account = await get_by_system_id(self.pool, request.system_id)
        password_ok = account is not None and await self._password_ok(account, request.password)
        # With a registry the bind count is settled below, atomically over all processes.
        local = len(self.server.sessions(account.id)) if account and self.server else 0
        status = bind_verdict(account, password_ok=password_ok,
                              peer_ip=request.peer[0] if request.peer else None,
                              bound_now=0 if self.binds is not None else local)
        if status == S.ESME_ROK and self.binds is not None:
            assert account is not None
            try:
                if not await self.binds.reserve(account.id, request.connection_id, account.max_binds):
                    status = S.ESME_RBINDFAIL
            except Exception:
                # Redis trouble: keep serving, with this process's own count.
                log.warning("event=smpp_bind_registry_failed", exc_info=True)
                if local >= account.max_binds:
                    status = S.ESME_RBINDFAIL
        if status != S.ESME_ROK:
            log.info("event=smpp_bind_refused system_id=%r peer=%s status=0x%08x",
                     request.system_id, request.peer, status)
            return BindResult.reject(status)
        assert account is not None
        return BindResult.accept(account, key=account.id,
                                 account_tps=account.tps if self.throttle is None else None)

    async def session_bound(self, session: ServerSession) -> None:
        if self.on_bound is not None:
            self.on_bound()

    async def session_closed(self, session: ServerSession) -> None:
        if self.binds is not None:
            await self.binds.release(session.id)

    def handle_request_soon(self, session: ServerSession, pdu: Pdu) -> asyncio.Future | None:
        # submit_sm / data_sm without a Redis TPS check (most traffic): answered from the
        # batcher's future, no task per PDU. Same answers as handle_request.
        account: SmppAccount = session.account
        if not isinstance(pdu, SubmitSm | DataSm) or (account.tps and self.throttle is not None):
            return None
        if type(pdu) is SubmitSm and pdu.replace_if_present_flag == 1:
            return None  # a replacing submit looks for its pending match first
        reply = self._submission(session, account, pdu)
        if isinstance(reply, int):
            future = asyncio.get_running_loop().create_future()
            future.set_result(reply)
            return future
        return self.batcher.enqueue(reply, as_reply=True)

    @staticmethod
    def _submission(session: ServerSession, account: SmppAccount, pdu: SubmitSm | DataSm
                    ) -> Submission | int:
        """The submission a ``submit_sm``/``data_sm`` makes, or the status refusing it."""
        if type(pdu) is SubmitSm and (refusal := field_refusal(pdu)) is not None:
            return refusal
        timing = timing_of(pdu, datetime.now(UTC))
        if isinstance(timing, int):
            return timing
        try:
            sub = submission_of(account, session.id, pdu, timing=timing)
        except ValueError:
            return S.ESME_RINVESMCLASS
        if isinstance(pdu, SubmitSm) and pdu.replace_if_present_flag and not replaceable(sub):
            return S.ESME_RINVSUBREP
        return sub

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Any:
        account: SmppAccount = session.account
        if (account.tps and self.throttle is not None and isinstance(pdu, SubmitSm | DataSm | SubmitMulti)
                and not await self.throttle.admit(account.id, account.tps)):
            return S.ESME_RTHROTTLED  # the account's TPS over all processes (SMPP 3.4 §5.1.3)
        if isinstance(pdu, SubmitSm | DataSm):
            sub = self._submission(session, account, pdu)
            if isinstance(sub, int):
                return sub
            try:
                if isinstance(pdu, SubmitSm) and pdu.replace_if_present_flag:
                    result = await self._submit_replacing(account, sub)
                else:
                    result = await self.batcher.submit(sub)
            except Exception:
                log.exception("[%s] pipeline failed", session.id)
                return S.ESME_RSYSERR  # nothing stored: the client may send it again
            return reply_of(result)
        if isinstance(pdu, SubmitMulti):
            return await self._submit_multi(session, account, pdu)
        if isinstance(pdu, QuerySm):
            return await self._query(account, pdu)
        if isinstance(pdu, CancelSm):
            return await self._cancel(account, pdu)
        if isinstance(pdu, ReplaceSm):
            return await self._replace(account, pdu)
        return S.ESME_RINVCMDID

    async def _submit_replacing(self, account: SmppAccount, sub: Submission) -> Accepted | Rejected:
        """Submit ``sub``, then take back the pending message it replaces (``gateway/intake/README.md``,
        replace_if_present_flag)."""
        destination = self.pipeline.normalise(sub.destination)
        if destination is None:
            return await self.batcher.submit(sub)  # refused by the pipeline: replaces nothing
        key = (account.id, sub.sender, destination, sub.service_type)
        async with self._replacing.hold(key):
            # Looked for before the submit: only what was pending when it came is replaced.
            pending = await self.pool.fetchval(_PENDING_MATCH, *key)
            result = await self.batcher.submit(sub)
            if pending is None or not isinstance(result, Accepted):
                return result
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    taken = await self._take_back(conn, pending, f"replaced by {result.message_id}")
            except Exception:
                # The new message is stored: answer it; the old one is simply sent too.
                log.exception("event=smpp_replace_pending_failed message=%s", pending)
                return result
        log.info("event=smpp_replaced_pending message=%s by=%s done=%s account=%s",
                 pending, result.message_id, taken, account.id)
        return result

    async def _submit_multi(self, session: ServerSession, account: SmppAccount, pdu: SubmitMulti) -> Any:
        refusal = field_refusal(pdu)
        if refusal is not None:
            return pdu.make_response(refusal)
        timing = timing_of(pdu, datetime.now(UTC))
        if isinstance(timing, int):
            return timing
        single = SubmitSm(
            service_type=pdu.service_type,
            source_addr_ton=pdu.source_addr_ton, source_addr_npi=pdu.source_addr_npi,
            source_addr=pdu.source_addr, esm_class=pdu.esm_class, data_coding=pdu.data_coding,
            registered_delivery=pdu.registered_delivery, short_message=pdu.short_message,
            tlvs=dict(pdu.tlvs),
        )
        unsuccess: list[UnsuccessSme] = []
        waits = []
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeAddress):
                unsuccess.append(UnsuccessSme(0, 0, getattr(dest, "dl_name", ""), S.ESME_RINVDLNAME))
                continue
            try:
                sub = submission_of(account, session.id, single, dest.destination_addr, timing=timing)
            except ValueError:
                return pdu.make_response(S.ESME_RINVESMCLASS)
            if pdu.replace_if_present_flag:
                if not replaceable(sub):
                    return pdu.make_response(S.ESME_RINVSUBREP)
                waits.append((dest, self._submit_replacing(account, sub)))
            else:
                waits.append((dest, self.batcher.submit(sub)))
        results = await asyncio.gather(*(w for _, w in waits), return_exceptions=True)
        first_id = ""
        for (dest, _), result in zip(waits, results, strict=True):
            if isinstance(result, Accepted):
                first_id = first_id or str(result.message_id)
            else:
                status = result.smpp_status if isinstance(result, Rejected) else S.ESME_RSYSERR
                unsuccess.append(UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi,
                                              dest.destination_addr, status))
        if not first_id:
            return pdu.make_response(S.ESME_RSUBMITFAIL)
        return SubmitMultiResp(message_id=first_id, unsuccess_smes=unsuccess)

    async def _own(self, account: SmppAccount, message_id: str):
        try:
            mid = uuid.UUID(message_id.strip("\x00 "))
        except ValueError:
            return None
        async with self.pool.acquire() as conn:
            message = await get_message(conn, mid)
        if message is None or message.smpp_account_id != account.id:
            return None  # another account's message looks like no message at all
        return message

    async def _query(self, account: SmppAccount, pdu: QuerySm) -> Any:
        message = await self._own(account, pdu.message_id)
        if message is None:
            return S.ESME_RQUERYFAIL
        final = format_absolute(message.done_at) if message.done_at is not None else ""
        return QuerySmResp(message_id=pdu.message_id, final_date=final,
                           message_state=query_state(message))

    async def _replace(self, account: SmppAccount, pdu: ReplaceSm) -> Any:
        refusal = field_refusal(pdu)
        if refusal is not None:
            return refusal
        message = await self._own(account, pdu.message_id)
        if message is None or message.sender != pdu.source_addr:
            return S.ESME_RINVMSGID  # §4.10.1: source_addr must be the submit's
        async with self.pool.acquire() as conn, conn.transaction():
            # Locked until commit: a worker claiming now skips the row, and one that
            # holds it (claimed_by set) may have the text on the wire already.
            row = await conn.fetchrow(
                "SELECT claimed_by FROM send_queue WHERE message_id = $1 FOR UPDATE SKIP LOCKED",
                message.id,
            )
            # Read again under the lock: a replace_sm just before this one may have changed
            # what NULL fields keep.
            message = await get_message(conn, message.id) or message
            change = replacement(message, pdu, datetime.now(UTC))
            if isinstance(change, int):
                return change  # a bad PDU is answered as such, whatever the message's state
            if row is None or row["claimed_by"] is not None:
                return S.ESME_RREPLACEFAIL
            done = await conn.fetchval(
                """UPDATE messages SET text = $2, encoding = $3, data_coding = $4,
                       registered_delivery = $5, scheduled_for = $6, valid_until = $7,
                       updated_at = now()
                   WHERE id = $1 AND status = $8 AND parts = $9 RETURNING id""",
                message.id, change.text, change.encoding, change.data_coding,
                change.registered_delivery, change.scheduled_for, change.valid_until,
                str(Status.BILLED), message.parts,
            )
            if done is None:
                return S.ESME_RREPLACEFAIL
            if change.scheduled_for != message.scheduled_for:
                await conn.execute(
                    "UPDATE send_queue SET not_before = coalesce($2, now()) WHERE message_id = $1",
                    message.id, change.scheduled_for,
                )
        log.info("event=smpp_replaced message=%s account=%s", message.id, account.id)
        return None

    async def _cancel(self, account: SmppAccount, pdu: CancelSm) -> Any:
        message = await self._own(account, pdu.message_id)
        if message is None:
            return S.ESME_RCANCELFAIL
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._take_back(conn, message.id, "cancelled by the client"):
                return S.ESME_RCANCELFAIL
        return None

    async def _take_back(self, conn: asyncpg.Connection, message_id: uuid.UUID, why: str) -> bool:
        """Take a message out of the send queue unsent: FAILED, refunded, its receipt
        (call in a transaction). False when a worker holds it or it left the queue."""
        # Only a message no worker holds can be taken back: once claimed it may be on the wire.
        gone = await conn.fetchval(
            "DELETE FROM send_queue WHERE message_id = $1 AND claimed_by IS NULL RETURNING message_id",
            message_id,
        )
        if gone is None:
            return False
        moved = await apply_event(conn, message_id, Event.FAILED, error_text=why)
        if moved is not None:
            await status_changed(conn, [moved], outbox=self.outbox)
        return True


class SmppIngress:
    """The SMPP server service: listens, and runs the outbox dispatcher."""

    name = "smpp_server"  # in /healthz

    def __init__(self, pool: asyncpg.Pool, pipeline: Pipeline, *, host: str = "127.0.0.1", port: int = 0,
                 session: SessionConfig | None = None, poll_interval: float = 0.25,
                 lease: float = 30.0, redis=None, bind_ttl: float = 30.0, worker: int = 0) -> None:
        """``redis``: count binds and account TPS over all processes (None: this one only).

        ``worker``: this process's number among the workers sharing the port (0: alone);
        the workers listen together (SO_REUSEPORT) and each is its own bind-registry node.
        """
        self.host, self._port = host, port
        # A fixed port names this server across restarts: a restart clears its own dead binds.
        node = f"{socket.gethostname()}:{port}" + (f":{worker}" if worker else "") if port else None
        self._reuse_port = worker > 0
        self.binds = BindRegistry(redis, ttl=bind_ttl, node=node) if redis is not None else None
        self.handler = HeraldSmppHandler(
            pool, pipeline, binds=self.binds,
            throttle=AccountThrottle(redis) if redis is not None else None)
        config = ServerConfig(system_id="Herald", tick_interval=0.5, session=session or SessionConfig(
            window=50, peer_window=1000, enquire_link_interval=60.0, response_timeout=10.0))
        self.server = SmppServer(self.handler, config)
        self.handler.server = self.server
        self.outbox = OutboxDispatcher(pool, self.server, poll_interval=poll_interval, lease=lease)
        self.handler.on_bound = self.outbox.notify
        self.handler.outbox = self.outbox

    @property
    def port(self) -> int:
        return self.server.port

    def health(self) -> str:
        """``"ok"`` while the SMPP port listens and the outbox dispatcher runs (``/healthz``)."""
        if not self.server.listening:
            return "not listening"
        outbox = self.outbox.health()
        return "ok" if outbox == "ok" else f"outbox {outbox}"

    async def start(self) -> None:
        if self.binds is not None:
            await self.binds.start()
        await self.server.start(self.host, self._port, reuse_port=self._reuse_port)
        await self.outbox.start()
        log.info("event=smpp_listening host=%s port=%s", self.host, self.port)

    async def stop(self) -> None:
        await self.server.close(grace=2.0)
        await self.handler.batcher.drain()
        await self.outbox.stop()
        if self.binds is not None:
            await self.binds.stop()


