"""asyncio glue shared by the server and client: feed a :class:`Session`, write what it says.

A :class:`Connection` is an :class:`asyncio.Protocol` around one
:class:`~smpp.session.Session`. It turns session events into futures for
our own requests (:class:`~smpp.results.RequestResult`), runs handlers for
the peer's requests as tasks (answered in whatever order they finish), runs
the session timers off the loop clock, and closes the transport when the
session says so — but only after every running handler has answered, so a
graceful unbind never drops a response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from smpp.errors import ConnectionClosedError
from smpp.pdu import RESPONSE_CLASS, CommandStatus, EnquireLink, GenericNack, Pdu, status_name
from smpp.results import Outcome, RequestResult
from smpp.session import (
    BadResponse,
    Event,
    InactivityTimeout,
    PduReceived,
    PeerError,
    RequestAborted,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    UnbindReceived,
)

__all__ = ["Connection"]


class Connection(asyncio.Protocol):
    """One SMPP connection on the event loop. Subclasses handle the peer's requests."""

    def __init__(
        self,
        role: Role,
        config: SessionConfig,
        *,
        connection_id: str,
        logger: logging.Logger,
        tick_interval: float = 1.0,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.id = connection_id
        self.log = logger
        self.session = Session(role, config, now=self.loop.time())
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.connected_at = self.loop.time()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._tick_interval = tick_interval
        self._requests: dict[int, tuple[asyncio.Future[RequestResult], Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._wbuf: list[bytes] = []
        self._write_scheduled = False

    # --- hooks for subclasses ---

    def on_request(self, pdu: Pdu) -> None:
        """A request from the peer; answer it with :meth:`send_response`."""
        raise NotImplementedError

    def on_result(self, result: RequestResult) -> None:
        """One of our requests ended."""

    def on_tick(self, now: float) -> None:
        """Called on every timer tick."""

    def on_closed(self) -> None:
        """The transport is gone."""

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.peer = tuple(peer[:2]) if peer else None  # type: ignore[assignment]
        self.connected_at = self.loop.time()
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.session.receive_data(data, self.loop.time())
            self._flush()
            self._dispatch(events)
        except Exception:
            # A bug on our side must cost this connection only, and loudly.
            self.log.exception("[%s] failed on received data; aborting the connection", self.id)
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closing = True
        if exc is not None:
            self.log.info("[%s] connection lost: %s", self.id, exc)
        try:
            self._dispatch(self.session.connection_lost())
        finally:
            # Anything not yet resolved (should be nothing) still ends, as unknown.
            for seq in list(self._requests):
                self._resolve_seq(seq, None, Outcome.UNKNOWN, None, "connection lost")
            if not self.closed.done():
                self.closed.set_result(None)
            try:
                self.on_closed()
            except Exception:
                self.log.exception("[%s] close hook failed", self.id)

    def pause_writing(self) -> None:
        # The peer does not read what we write: stop reading its requests too.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- state ---

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self._closing and not self.closed.done()

    def awaiting(self) -> list[asyncio.Future[RequestResult]]:
        """Futures of our requests still waiting for their response."""
        return [future for future, _ in self._requests.values()]

    @property
    def busy(self) -> int:
        """Peer requests whose handler is still running."""
        return len(self._tasks)

    # --- sending ---

    def send_response(self, pdu: Pdu) -> None:
        """Answer a request of the peer. Raises :class:`LocalProtocolError`."""
        data = self.session.send(pdu, self.loop.time())
        self._write(data)

    def send_request(self, pdu: Pdu, context: Any = None) -> asyncio.Future[RequestResult]:
        """Send a request; the future resolves with its :class:`RequestResult`.

        Raises :class:`LocalProtocolError` (not allowed now, window full) or
        :class:`~smpp.errors.EncodeError`; nothing is sent then.
        """
        if not self.is_open:
            raise ConnectionClosedError(f"[{self.id}] connection is closed")
        data = self.session.send(pdu, self.loop.time())
        future: asyncio.Future[RequestResult] = self.loop.create_future()
        if pdu.command_id in _ANSWERED:
            self._requests[pdu.sequence_number] = (future, context)
        else:
            future.set_result(RequestResult(Outcome.ACCEPTED, pdu, None, context, "", self.id))
        self._write(data)
        return future

    def _write(self, data: bytes) -> None:
        # Writes made in one turn of the loop go out in one call to the
        # transport: under load that is one syscall for many PDUs.
        if data:
            self._wbuf.append(data)
            if not self._write_scheduled:
                self._write_scheduled = True
                self.loop.call_soon(self._write_out)

    def _write_out(self) -> None:
        self._write_scheduled = False
        data = b"".join(self._wbuf)
        self._wbuf.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            self._write(data)

    # --- closing ---

    def close(self) -> None:
        """Close after writing what is buffered."""
        self._closing = True
        if self._wbuf:
            self._write_out()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._closing = True
        if self.transport is not None:
            self.transport.abort()

    def _maybe_close(self) -> None:
        if self.session.should_close and not self._tasks and not self._closing:
            self.close()

    # --- tasks ---

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a handler for a peer request; the connection stays open until it ends."""
        task = self.loop.create_task(coro, name=f"{self.id}:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error(
                "[%s] task %s failed", self.id, task.get_name(), exc_info=task.exception()
            )
        self._maybe_close()

    def track(self, future: asyncio.Future[Any]) -> None:
        """Count ``future`` as a running handler (a request answered without a task).

        Add the callback that answers the peer before calling this, so the answer
        goes out before a pending graceful close.
        """
        self._tasks.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._untrack)

    def _untrack(self, future: asyncio.Future[Any]) -> None:
        self._tasks.discard(future)  # type: ignore[arg-type]
        self._maybe_close()

    async def drain_tasks(self) -> None:
        """Wait for every running handler to finish."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    # --- events ---

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, PduReceived):
                self.on_request(event.pdu)
            elif isinstance(event, ResponseReceived):
                response = event.response
                ok = response.command_status == CommandStatus.ESME_ROK and not isinstance(
                    response, GenericNack
                )
                reason = "" if ok else status_name(response.command_status)
                outcome = Outcome.ACCEPTED if ok else Outcome.REJECTED
                self._resolve(event.request, response, outcome, reason)
            elif isinstance(event, RequestTimedOut):
                if isinstance(event.request, EnquireLink):
                    self.log.warning("[%s] enquire_link unanswered: closing", self.id)
                    self.abort()
                else:
                    self._resolve(event.request, None, Outcome.UNKNOWN, "response timeout")
            elif isinstance(event, RequestAborted):
                self._resolve(event.request, None, Outcome.UNKNOWN, "connection lost")
            elif isinstance(event, BadResponse):
                self.log.warning("[%s] undecodable response: %s", self.id, event.error)
                self._resolve(event.request, None, Outcome.UNKNOWN, f"bad response: {event.error}")
            elif isinstance(event, UnbindReceived):
                self.log.info("[%s] peer unbound", self.id)
            elif isinstance(event, PeerError):
                level = logging.WARNING if event.fatal else logging.INFO
                self.log.log(
                    level,
                    "[%s] peer error (answered %s): %s",
                    self.id,
                    "nothing" if event.status is None else status_name(event.status),
                    event.message,
                )
                if event.fatal:
                    self.close()
            elif isinstance(event, InactivityTimeout):
                self.log.info("[%s] idle for %.0f s: closing", self.id, event.idle)
                self.close()
        self._maybe_close()

    def _resolve(self, request: Pdu, response: Pdu | None, outcome: Outcome, reason: str) -> None:
        self._resolve_seq(request.sequence_number, request, outcome, response, reason)

    def _resolve_seq(
        self,
        seq: int,
        request: Pdu | None,
        outcome: Outcome,
        response: Pdu | None,
        reason: str,
    ) -> None:
        entry = self._requests.pop(seq, None)
        if entry is None:
            return
        future, context = entry
        if request is None:
            request = GenericNack(sequence_number=seq)
        result = RequestResult(outcome, request, response, context, reason, self.id)
        if not future.done():
            future.set_result(result)
        try:
            self.on_result(result)
        except Exception:
            self.log.exception("[%s] result hook failed", self.id)

    # --- timers ---

    def _arm_timer(self) -> None:
        now = self.loop.time()
        deadline = self.session.next_deadline()
        when = now + self._tick_interval
        if deadline is not None:
            when = min(when, max(deadline, now + 0.001))
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed.done():
            return
        try:
            now = self.loop.time()
            events = self.session.tick(now)
            self._flush()
            self._dispatch(events)
            self.on_tick(now)
        except Exception:
            self.log.exception("[%s] timer failed; aborting the connection", self.id)
            self.abort()
            return
        if not self.closed.done():
            self._arm_timer()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.peer} {self.session.state.name}>"


# Requests that take a response (and so a pending future).
_ANSWERED = frozenset(RESPONSE_CLASS)
