"""SMPP round trips over loopback: Herald's client against Herald's server.

For windows 1, 10 and 50, the client pushes ``submit_sm`` PDUs (160
characters) as fast as the window lets it and the server answers each with a
``message_id`` at once. Prints messages per second and the latency
percentiles from writing a ``submit_sm`` to resolving its result.

By default the server runs in a child process (its own core); ``--inline``
runs both ends on one event loop. uvloop is used when installed.

Usage: ``.venv/bin/python bench/smpp_loopback.py [--messages 20000] [--inline]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import statistics
import time

from smpp.client import ClientConfig, SmppClient
from smpp.pdu import Npi, RegisteredDelivery, SubmitSm, Ton
from smpp.results import Outcome
from smpp.server import BindRequest, BindResult, ServerConfig, ServerHandler, SmppServer
from smpp.session import SessionConfig

WINDOWS = (1, 10, 50)


class FastSmsc(ServerHandler):
    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def authenticate(self, request: BindRequest) -> BindResult:
        return BindResult.accept(request.system_id)

    async def handle_request(self, session, pdu):
        return f"{next(self._ids):x}"


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _serve(port_out: multiprocessing.Queue | None, stop: asyncio.Event | None) -> SmppServer:
    server = SmppServer(
        FastSmsc(),
        ServerConfig(session=SessionConfig(window=10, peer_window=1000)),
    )
    await server.start("127.0.0.1", 0)
    if port_out is not None:
        port_out.put(server.port)
    return server


def _server_process(port_out: multiprocessing.Queue, stop_in: multiprocessing.Queue) -> None:
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    async def run() -> None:
        server = await _serve(port_out, None)
        await loop.run_in_executor(None, stop_in.get)
        await server.close(grace=1.0)

    loop.run_until_complete(run())


async def _run_window(port: int, window: int, messages: int) -> tuple[float, list[float]]:
    client = SmppClient(
        ClientConfig(
            "127.0.0.1",
            port,
            "bench",
            "pw",
            session=SessionConfig(window=window, enquire_link_interval=None),
            name=f"bench-w{window}",
        )
    )
    await client.start()
    await client.wait_bound()
    text = b"x" * 160
    latencies: list[float] = []
    failures = 0
    clock = time.perf_counter

    def make() -> SubmitSm:
        return SubmitSm(
            source_addr="Herald",
            source_addr_ton=Ton.ALPHANUMERIC,
            destination_addr="447700900123",
            dest_addr_ton=Ton.INTERNATIONAL,
            dest_addr_npi=Npi.ISDN,
            registered_delivery=RegisteredDelivery.RECEIPT_ALWAYS,
            short_message=text,
        )

    # Warm up.
    for _ in range(200):
        await client.submit(make())
    start = clock()
    futures = []
    for _ in range(messages):
        sent = clock()
        future = await client.send(make())

        def done(f: asyncio.Future, sent: float = sent) -> None:
            nonlocal failures
            latencies.append(clock() - sent)
            if f.result().outcome is not Outcome.ACCEPTED:
                failures += 1

        future.add_done_callback(done)
        futures.append(future)
    await asyncio.gather(*futures)
    elapsed = clock() - start
    await client.close()
    if failures:
        print(f"  window {window}: {failures} requests not accepted!")
    return messages / elapsed, latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _main(args: argparse.Namespace) -> None:
    proc = None
    stop_q: multiprocessing.Queue | None = None
    server = None
    if args.inline:
        server = await _serve(None, None)
        port = server.port
    else:
        ctx = multiprocessing.get_context("spawn")
        port_q: multiprocessing.Queue = ctx.Queue()
        stop_q = ctx.Queue()
        proc = ctx.Process(target=_server_process, args=(port_q, stop_q), daemon=True)
        proc.start()
        port = port_q.get(timeout=30)
    where = "same event loop" if args.inline else "server in a child process"
    print(f"submit_sm -> submit_sm_resp over 127.0.0.1 ({where}), {args.messages} messages each")
    print(f"{'window':>6} {'msgs/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for window in WINDOWS:
        rate, lat = await _run_window(port, window, args.messages)
        ms = [x * 1000 for x in lat]
        print(
            f"{window:>6} {rate:>10,.0f} {statistics.median(ms):>8.3f} {_pct(ms, 90):>8.3f}"
            f" {_pct(ms, 99):>8.3f} {max(ms):>8.3f}"
        )
    if server is not None:
        await server.close(grace=1.0)
    if proc is not None and stop_q is not None:
        stop_q.put("stop")
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--inline", action="store_true", help="server and client on one loop")
    args = parser.parse_args()
    loop = _new_loop()
    try:
        loop.run_until_complete(_main(args))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
