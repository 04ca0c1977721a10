"""A lean SMPP load client for benchmarks: many binds, pre-encoded submits, no per-PDU objects.

Herald's own :class:`smpp.client.SmppClient` is built for correctness (a
session state machine, a future and a task per request); driving a benchmark
with it makes the client the bottleneck long before the server is. This
module only does what a load generator needs:

* one :class:`asyncio.Protocol` per bind (``bind_transceiver``, SMPP 3.4 §4.1.5);
* ``submit_sm`` frames encoded once with :func:`smpp.codec.encode`, then copied
  with the sequence number and the destination digits patched in;
* every PDU a window allows goes out in one ``transport.write`` call, topped up
  straight from ``data_received`` as responses come back (no tasks per PDU);
* responses read header first (``command_length``, ``command_id``,
  ``command_status``, ``sequence_number``, §3.2); only ``deliver_sm`` bodies
  are looked into, as far as ``esm_class``, to count delivery receipts
  (§5.2.12) before answering ``deliver_sm_resp``;
* the peer's ``enquire_link`` and ``unbind`` answered; an ``unbind`` of our own
  at the end.

Two ways of loading: :meth:`LoadClient.flood` (n messages as fast as the
windows allow) and :meth:`LoadClient.paced` (a steady rate). Each returns a
:class:`RunStats` with the counts and every submit→response latency. Nothing
is printed here; the caller reports.

:func:`open_load` gives a :class:`LoadClient` in this process or, with
``process=True``, a :class:`LoadProcess` with the same methods whose binds run
in a child process on their own event loop (uvloop when installed)::

    async with open_load("127.0.0.1", port, "bench", "pw", binds=4, window=100) as load:
        stats = await load.flood(30_000)
        await load.wait_receipts(stats.accepted, timeout=60)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from smpp.codec import encode
from smpp.pdu import BindTransceiver, SubmitSm, Unbind

__all__ = ["LoadClient", "LoadError", "LoadProcess", "RunStats", "open_load"]

_HEADER = struct.Struct(">IIII")
_LENGTH = struct.Struct(">I")
_MAX_LENGTH = 0x12000  # cap command_length before buffering, as Herald's codec does
PACE_TICK = 0.001   # shortest sleep of a paced run (see LoadClient.paced)

# SMPP 3.4 §5.1.2.1 command_id values this client meets.
_GENERIC_NACK = 0x80000000
_BIND_TRX_RESP = 0x80000009
_SUBMIT_SM_RESP = 0x80000004
_DELIVER_SM = 0x00000005
_DELIVER_SM_RESP = 0x80000005
_UNBIND = 0x00000006
_UNBIND_RESP = 0x80000006
_ENQUIRE_LINK = 0x00000015
_ENQUIRE_LINK_RESP = 0x80000015
_ESME_RINVCMDID = 0x00000003

# esm_class message type bits (SMPP 3.4 §5.2.12): a delivery receipt or an
# intermediate notification, as smpp.pdu.EsmClass.is_receipt counts them.
_TYPE_MASK = 0x3C
_RECEIPT_TYPES = (0x04, 0x20)

DEST_DIGITS = 7
"""Destinations are ``prefix`` + the message index modulo 10**7 on 7 digits."""


class LoadError(Exception):
    """A bind was refused or the connection failed before the run could start."""


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one run measured. Latencies are seconds, submit written → response read."""

    sent: int
    accepted: int
    refused: int
    unanswered: int
    seconds: float
    latencies: list[float] = field(repr=False)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Accepted messages per second over the run."""
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    @property
    def offered_rate(self) -> float:
        """Submits written per second over the run."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Latency at quantile ``p`` (0..1) in milliseconds; 0 without responses."""
        if not self.latencies:
            return 0.0
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(len(values) * p))] * 1000


class SubmitTemplate:
    """Pre-encoded ``submit_sm`` frames differing in sequence number and destination.

    The codec encodes one model PDU; each frame is its octets with the
    ``sequence_number`` (header octets 12-15) and the destination's last
    :data:`DEST_DIGITS` digits replaced, so every frame stays exactly what the
    codec would have produced for that PDU.
    """

    def __init__(
        self,
        source: str = "Herald",
        prefix: str = "7916",
        text: bytes = b"Bench message from Herald",
        registered_delivery: int = 1,
    ) -> None:
        marker = "9" * DEST_DIGITS
        model = encode(SubmitSm(source_addr=source, destination_addr=prefix + marker,
                                short_message=text, registered_delivery=registered_delivery))
        # The destination is the third C-octet string of the body (service_type,
        # source_addr, destination_addr: SMPP 3.4 §4.4.1); find it by position.
        pos = model.index(b"\0", 16) + 3               # service_type, ton, npi
        pos = model.index(b"\0", pos) + 3               # source_addr, ton, npi
        digits = pos + len(prefix)
        if model[digits:digits + DEST_DIGITS] != marker.encode():
            raise ValueError("destination not where SMPP 3.4 §4.4.1 puts it")
        self._head = model[:12]
        self._middle = model[16:digits]
        self._tail = model[digits + DEST_DIGITS:]
        self.size = len(model)

    def frame(self, sequence: int, index: int) -> bytes:
        """The frame for message ``index`` sent with ``sequence``."""
        return (self._head + sequence.to_bytes(4, "big") + self._middle
                + b"%07d" % (index % 10_000_000) + self._tail)


class _Run:
    """Bookkeeping of one flood or paced run shared by every bind."""

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int) -> None:
        self.total = total
        self.sent = 0
        self.answered = 0
        self.accepted = 0
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.started = time.perf_counter()
        self.last_answer = self.started
        self.done = loop.create_future()
        if total == 0:
            self.done.set_result(None)

    def answer(self, status: int, latency: float, now: float) -> None:
        self.answered += 1
        self.latencies.append(latency)
        self.last_answer = now
        if status == 0:
            self.accepted += 1
        else:
            self.statuses[status] += 1
        if self.answered >= self.total and not self.done.done():
            self.done.set_result(None)

    def stats(self, ended: float) -> RunStats:
        return RunStats(
            sent=self.sent, accepted=self.accepted, refused=self.answered - self.accepted,
            unanswered=self.sent - self.answered, seconds=ended - self.started,
            latencies=self.latencies, statuses=dict(self.statuses),
        )


class _Bind(asyncio.Protocol):
    """One transceiver bind: writes submits while its window has room, reads answers."""

    def __init__(self, client: LoadClient, window: int) -> None:
        self.client = client
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.seq = 1
        self.in_flight: dict[int, float] = {}     # sequence_number → perf_counter when written
        self.quota = 0                             # submits this bind may write in the run
        self.written = 0
        self.run: _Run | None = None
        self.bound = self.loop.create_future()
        self.unbound = self.loop.create_future()
        self.lost = self.loop.create_future()

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for fut in (self.bound, self.unbound, self.lost):
            if not fut.done():
                fut.set_result(None if fut is not self.bound else -1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        size = len(buf)
        pos = 0
        now = time.perf_counter()
        replies: list[bytes] = []
        run = self.run
        in_flight = self.in_flight
        unpack = _HEADER.unpack_from
        while size - pos >= 16:
            length, command_id, status, seq = unpack(buf, pos)
            if length < 16 or length > _MAX_LENGTH:
                # Framing lost (SMPP 3.4 §3.2): nothing after this can be trusted.
                self.transport.abort()  # type: ignore[union-attr]
                return
            if size - pos < length:
                break
            if command_id == _SUBMIT_SM_RESP or command_id == _GENERIC_NACK:
                if seq == 1 and not self.bound.done():   # the bind itself was nacked
                    self.bound.set_result(status or _ESME_RINVCMDID)
                sent = in_flight.pop(seq, None)
                if sent is not None and run is not None:
                    # A generic_nack always carries an error (§4.3); never count it accepted.
                    if command_id == _GENERIC_NACK and not status:
                        status = _ESME_RINVCMDID
                    run.answer(status, now - sent, now)
            elif command_id == _DELIVER_SM:
                self.client._deliver_sm(self._esm_class(buf, pos, length))
                # deliver_sm_resp: message_id is unused and set to NULL (§4.6.2).
                replies.append(_HEADER.pack(17, _DELIVER_SM_RESP, 0, seq) + b"\0")
            elif command_id == _ENQUIRE_LINK:
                replies.append(_HEADER.pack(16, _ENQUIRE_LINK_RESP, 0, seq))
            elif command_id == _BIND_TRX_RESP:
                if not self.bound.done():
                    self.bound.set_result(status)
            elif command_id == _UNBIND_RESP:
                if not self.unbound.done():
                    self.unbound.set_result(None)
            elif command_id == _UNBIND:
                replies.append(_HEADER.pack(16, _UNBIND_RESP, 0, seq))
            elif not command_id & 0x80000000:
                replies.append(_HEADER.pack(16, _GENERIC_NACK, _ESME_RINVCMDID, seq))
            pos += length
        if pos:
            del buf[:pos]
        self._pump(replies)

    # -- sending --

    def _pump(self, out: list[bytes] | None = None) -> None:
        """Write what the window and the quota allow, plus ``out``, in one call."""
        out = out if out is not None else []
        run = self.run
        room = min(self.window - len(self.in_flight), self.quota - self.written)
        if room > 0 and run is not None and self.transport is not None:
            frame = self.client.template.frame
            index = self.client._next_index
            seq = self.seq
            now = time.perf_counter()
            in_flight = self.in_flight
            for _ in range(room):
                seq += 1
                in_flight[seq] = now
                out.append(frame(seq, index))
                index += 1
            self.seq = seq
            self.client._next_index = index
            self.written += room
            run.sent += room
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _send(self, frame: bytes) -> None:
        if self.transport is not None:
            self.transport.write(frame)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    @staticmethod
    def _esm_class(buf: bytearray, pos: int, length: int) -> int:
        # deliver_sm body (§4.6.1): service_type, source ton/npi/addr, dest ton/npi/addr, esm_class.
        end = pos + length
        try:
            p = buf.index(0, pos + 16, end) + 3
            p = buf.index(0, p, end) + 3
            p = buf.index(0, p, end) + 1
        except ValueError:
            return 0
        return buf[p] if p < end else 0


class LoadClient:
    """Several transceiver binds to one SMPP server, driven as one load generator."""

    def __init__(
        self,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        binds: int = 4,
        window: int = 100,
        template: SubmitTemplate | None = None,
        response_timeout: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self.system_id, self.password = system_id, password
        self.bind_count, self.window = binds, window
        self.template = template or SubmitTemplate()
        self.response_timeout = response_timeout
        self.receipts = 0
        """Delivery receipts received (and answered) so far, over all binds."""
        self.mo = 0
        """Other ``deliver_sm`` received (mobile originated)."""
        self._binds: list[_Bind] = []
        self._next_index = 0
        self._receipts_wanted: tuple[int, asyncio.Future[None]] | None = None

    async def connect(self) -> None:
        """Open and bind every connection; raises :class:`LoadError` when one is refused."""
        loop = asyncio.get_running_loop()
        timeout = self.response_timeout
        for _ in range(self.bind_count):
            _transport, bind = await asyncio.wait_for(loop.create_connection(
                lambda: _Bind(self, self.window), self.host, self.port), timeout)
            self._binds.append(bind)
            bind._send(encode(BindTransceiver(sequence_number=1, system_id=self.system_id,
                                              password=self.password)))
            status = await asyncio.wait_for(bind.bound, timeout)
            if status != 0:
                await self.close()
                raise LoadError(f"bind_transceiver refused with status 0x{status:08X}"
                                if status > 0 else "connection closed before bind_transceiver_resp")

    async def close(self, grace: float = 5.0) -> None:
        """Unbind every connection (SMPP 3.4 §4.2), then close them (waiting ``grace`` s at most)."""
        for bind in self._binds:
            if bind.transport is not None and bind.bound.done() and bind.bound.result() == 0:
                bind._send(encode(Unbind(sequence_number=bind.next_seq())))
        waits = [b.unbound for b in self._binds if b.transport is not None]
        if waits:
            await asyncio.wait(waits, timeout=grace)
        for bind in self._binds:
            if bind.transport is not None:
                bind.transport.close()
        lost = [b.lost for b in self._binds]
        if lost:
            await asyncio.wait(lost, timeout=grace)
        self._binds.clear()

    def _deliver_sm(self, esm_class: int) -> None:
        if esm_class & _TYPE_MASK in _RECEIPT_TYPES:
            self.receipts += 1
            wanted = self._receipts_wanted
            if wanted is not None and self.receipts >= wanted[0] and not wanted[1].done():
                wanted[1].set_result(None)
        else:
            self.mo += 1

    def _start(self, total: int) -> _Run:
        if not self._binds:
            raise LoadError("not connected")
        if any(b.run is not None for b in self._binds):
            raise LoadError("a run is already going")
        run = _Run(asyncio.get_running_loop(), total)
        for bind in self._binds:
            bind.run, bind.quota, bind.written = run, 0, 0
            bind.in_flight.clear()
        return run

    async def _finish(self, run: _Run) -> RunStats:
        """Wait for every answer, or until none came for ``response_timeout`` seconds."""
        while not run.done.done():
            try:
                await asyncio.wait_for(asyncio.shield(run.done), 1.0)
            except TimeoutError:
                alive = any(b.transport is not None for b in self._binds)
                idle = time.perf_counter() - run.last_answer
                if not alive or idle > self.response_timeout:
                    break
        ended = run.last_answer if run.done.done() else time.perf_counter()
        for bind in self._binds:
            bind.run = None
            bind.quota = bind.written
        return run.stats(ended)

    async def flood(self, n: int, *, offset: int | None = None) -> RunStats:
        """Submit ``n`` messages spread evenly over the binds, each as fast as its window allows.

        ``offset`` is the first message index (destinations follow it); by
        default indices continue from the previous run.
        """
        if offset is not None:
            self._next_index = offset
        run = self._start(n)
        k = len(self._binds)
        for i, bind in enumerate(self._binds):
            bind.quota = n // k + (1 if i < n % k else 0)
        for bind in self._binds:
            bind._pump()
        return await self._finish(run)

    async def paced(self, rate: float, seconds: float, *, offset: int | None = None) -> RunStats:
        """Offer ``rate`` submits per second for ``seconds``, round robin over the binds.

        A submit whose bind has a full window waits for room, so the offered
        rate holds only while the server keeps up; :attr:`RunStats.offered_rate`
        tells what was achieved.
        """
        if offset is not None:
            self._next_index = offset
        total = int(rate * seconds)
        run = self._start(total)
        binds = self._binds
        k = len(binds)
        issued = 0
        start = run.started
        while issued < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while issued < due:
                bind = binds[issued % k]
                bind.quota += 1
                issued += 1
            for bind in binds:
                bind._pump()
            if not any(b.transport is not None for b in binds):
                break
            # Sleep until the next submit is due, a millisecond at least: uvloop's timers
            # count whole milliseconds, so a shorter sleep returns at once and the client
            # would spin, taking a core from the server it measures on a small machine.
            delay = start + issued / rate - time.perf_counter()
            await asyncio.sleep(max(delay, PACE_TICK))
        return await self._finish(run)

    async def wait_receipts(self, n: int, seconds: float) -> int:
        """Wait until ``n`` receipts have arrived in all, ``seconds`` at most; how many did."""
        if self.receipts < n:
            self._receipts_wanted = (n, asyncio.get_running_loop().create_future())
            try:
                await asyncio.wait_for(self._receipts_wanted[1], seconds)
            except TimeoutError:
                pass
            finally:
                self._receipts_wanted = None
        return self.receipts


# -- in a child process ----------------------------------------------------------------------


def _child(conn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Child process: run a :class:`LoadClient` and serve the parent's calls over ``conn``."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        client = LoadClient(*args, **kwargs)
        try:
            await client.connect()
        except Exception as err:  # the parent raises it
            conn.send(("error", repr(err)))
            return
        conn.send(("ok", None))
        while True:
            method, call_args, call_kwargs = await loop.run_in_executor(None, conn.recv)
            try:
                result = await getattr(client, method)(*call_args, **call_kwargs)
            except Exception as err:
                conn.send(("error", repr(err)))
                continue
            conn.send(("ok", (result, client.receipts, client.mo)))
            if method == "close":
                return

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


class LoadProcess:
    """A :class:`LoadClient` running in a child process; the same calls, awaited here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child_conn, args, kwargs), daemon=True)
        self.receipts = 0
        self.mo = 0

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method != "connect":
            self._conn.send((method, args, kwargs))
        kind, value = await asyncio.to_thread(self._conn.recv)
        if kind == "error":
            raise LoadError(f"load process: {value}")
        if method == "connect":
            return None
        result, self.receipts, self.mo = value
        return result

    async def connect(self) -> None:
        self._proc.start()
        await self._call("connect")

    async def flood(self, n: int, *, offset: int | None = None) -> RunStats:
        return await self._call("flood", n, offset=offset)

    async def paced(self, rate: float, seconds: float, *, offset: int | None = None) -> RunStats:
        return await self._call("paced", rate, seconds, offset=offset)

    async def wait_receipts(self, n: int, seconds: float) -> int:
        await self._call("wait_receipts", n, seconds)
        return self.receipts

    async def close(self) -> None:
        if self._proc.is_alive():
            try:
                await self._call("close")
            except (EOFError, OSError):
                pass
        await asyncio.to_thread(self._proc.join, 10)
        if self._proc.is_alive():
            self._proc.kill()


@asynccontextmanager
async def open_load(
    host: str,
    port: int,
    system_id: str,
    password: str,
    *,
    binds: int = 4,
    window: int = 100,
    process: bool = False,
    **kwargs: Any,
) -> AsyncIterator[LoadClient | LoadProcess]:
    """Bound load client(s), unbound on exit. ``process=True`` runs them in a child process."""
    cls = LoadProcess if process else LoadClient
    load = cls(host, port, system_id, password, binds=binds, window=window, **kwargs)
    try:
        await load.connect()
        yield load
    finally:
        await load.close()
