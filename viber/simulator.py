"""A Viber provider simulator: the contract of :mod:`viber` on a real port, for tests and demos.

It takes ``POST /messages`` (checking the bearer token), answers with a message
id — or 429 / 400 for a configured share of sends — and, after ``delay``
seconds, POSTs status reports to ``webhook_url`` with the same token: each
accepted message gets one outcome drawn from the weights (``delivered``;
``seen``, which reports delivered then seen; ``undelivered``; ``expired``;
``failed``; ``silent``, which reports nothing). A report the webhook does not
answer 2xx is posted again, backing off, a few times.

``herald viber-sim`` runs it from the command line (:func:`cli_command`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from viber.provider import MAX_TTL, MIN_TTL, TRAFFIC_TYPES, build_status_report

_OUTCOMES = ("delivered", "seen", "undelivered", "expired", "failed", "silent")


@dataclass
class ViberSimConfig:
    """How the simulated provider behaves. Outcome weights apply to accepted sends."""

    token: str | None = None            # None accepts any bearer token
    webhook_url: str | None = None      # where status reports go (None: nowhere)
    delay: float = 0.5                  # seconds between accepting and the first report
    seen_delay: float = 0.2             # seconds between delivered and seen
    delivered: float = 1.0
    seen: float = 0.0
    undelivered: float = 0.0
    expired: float = 0.0
    failed: float = 0.0
    silent: float = 0.0
    throttle_ratio: float = 0.0         # share of sends answered 429
    retry_after: float | None = None    # the Retry-After of a 429, if any
    reject_ratio: float = 0.0           # share answered 400 (permanent)
    report_attempts: int = 5
    seed: int | None = None


def choose_outcome(config: ViberSimConfig, draw: float) -> str:
    """The outcome for a uniform ``draw`` in [0, 1) by the config's weights."""
    weights = [max(0.0, getattr(config, name)) for name in _OUTCOMES]
    total = sum(weights)
    if total <= 0:
        return "silent"
    point = draw * total
    for name, weight in zip(_OUTCOMES, weights, strict=True):
        if point < weight:
            return name
        point -= weight
    return _OUTCOMES[-1]


def check_request(body: object) -> str | None:
    """Why a send request breaks the contract, or None when it is good."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    for name in ("sender", "phone", "text"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} is required"
    if not body["phone"].isdigit():
        return "phone must be digits"
    if body.get("traffic_type") not in TRAFFIC_TYPES:
        return "traffic_type must be transaction or promotion"
    button = body.get("button")
    if button is not None and not (isinstance(button, dict) and button.get("url")
                                   and button.get("caption")):
        return "a button needs url and caption"
    ttl = body.get("ttl")
    if ttl is not None and not (isinstance(ttl, int) and MIN_TTL <= ttl <= MAX_TTL):
        return f"ttl must be whole seconds in [{MIN_TTL}, {MAX_TTL}]"
    return None


class ViberSimulator:
    def __init__(self, config: ViberSimConfig | None = None) -> None:
        self.config = config or ViberSimConfig()
        self.received: list[dict] = []
        self.reports: list[dict] = []    # every report posted, with the answer's status
        self.counters: Counter[str] = Counter()
        self._rand = random.Random(self.config.seed)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0
        self.host = "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/messages", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _authorized(self, request: web.Request) -> bool:
        if self.config.token is None:
            return request.headers.get("Authorization", "").startswith("Bearer ")
        return hmac.compare_digest(request.headers.get("Authorization", ""),
                                   f"Bearer {self.config.token}")

    async def _send(self, request: web.Request) -> web.Response:
        self.counters["sends"] += 1
        if not self._authorized(request):
            self.counters["unauthorized"] += 1
            return web.json_response({"error": "bad token", "code": "auth"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = check_request(body)
        if problem is not None:
            self.counters["rejected"] += 1
            return web.json_response({"error": problem, "code": "bad_request"}, status=400)
        draw = self._rand.random()
        if draw < self.config.throttle_ratio:
            self.counters["throttled"] += 1
            headers = ({"Retry-After": str(self.config.retry_after)}
                       if self.config.retry_after is not None else None)
            return web.json_response({"error": "too many requests"}, status=429, headers=headers)
        if draw < self.config.throttle_ratio + self.config.reject_ratio:
            self.counters["rejected"] += 1
            return web.json_response({"error": "not a Viber user", "code": "no_viber"}, status=400)
        message_id = uuid.uuid4().hex
        self.received.append({**body, "message_id": message_id})
        self.counters["accepted"] += 1
        outcome = choose_outcome(self.config, self._rand.random())
        self.counters[f"outcome_{outcome}"] += 1
        if outcome != "silent":
            self._spawn(self._report_later(message_id, outcome))
        return web.json_response({"message_id": message_id})

    async def _report_later(self, message_id: str, outcome: str) -> None:
        await asyncio.sleep(self.config.delay)
        if outcome == "seen":
            await self.report(message_id, "delivered")
            await asyncio.sleep(self.config.seen_delay)
        await self.report(message_id, outcome,
                          error=None if outcome in ("delivered", "seen") else f"sim: {outcome}")

    async def report(self, message_id: str, status: str, *, error: str | None = None,
                     token: str | None = None) -> int | None:
        """POST one status report to the webhook (retrying a few times); the last HTTP status."""
        url = self.config.webhook_url
        if not url or self._session is None:
            return None
        body = json.dumps(build_status_report(message_id, status, datetime.now(UTC), error))
        auth = token if token is not None else (self.config.token or "sim")
        last: int | None = None
        for attempt in range(max(1, self.config.report_attempts)):
            try:
                async with self._session.post(url, data=body, headers={
                        "Authorization": f"Bearer {auth}",
                        "Content-Type": "application/json"}) as resp:
                    await resp.read()
                    last = resp.status
            except (TimeoutError, aiohttp.ClientError):
                last = None
            self.reports.append({"message_id": message_id, "status": status, "answer": last})
            if last is not None and 200 <= last < 300:
                self.counters["reports_sent"] += 1
                return last
            if last in (400, 401, 403):
                break  # the webhook will not take it however often we ask
            await asyncio.sleep(min(5.0, 0.1 * 2 ** attempt))
        self.counters["reports_failed"] += 1
        return last

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- herald viber-sim -----------------------------------------------------------------------


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", default=None, help="bearer token to require (default: any)")
    parser.add_argument("--webhook", default=None, metavar="URL",
                        help="where to POST status reports, e.g. "
                             "http://127.0.0.1:8080/api/viber/status/<vendor id>")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds before the first report")
    parser.add_argument("--delivered", type=float, default=1.0, help="weight of delivered")
    parser.add_argument("--seen", type=float, default=0.0, help="weight of delivered then seen")
    parser.add_argument("--undelivered", type=float, default=0.0, help="weight of undelivered")
    parser.add_argument("--expired", type=float, default=0.0, help="weight of expired")
    parser.add_argument("--failed", type=float, default=0.0, help="weight of failed")
    parser.add_argument("--silent", type=float, default=0.0, help="weight of no report at all")
    parser.add_argument("--throttle", type=float, default=0.0, help="share of sends answered 429")
    parser.add_argument("--reject", type=float, default=0.0, help="share of sends answered 400")


def config_from_args(args: argparse.Namespace) -> ViberSimConfig:
    return ViberSimConfig(
        token=args.token, webhook_url=args.webhook, delay=args.delay, delivered=args.delivered,
        seen=args.seen, undelivered=args.undelivered, expired=args.expired, failed=args.failed,
        silent=args.silent, throttle_ratio=args.throttle, reject_ratio=args.reject,
    )


def _run(args: argparse.Namespace) -> None:
    config = config_from_args(args)

    async def main() -> None:
        sim = ViberSimulator(config)
        await sim.start(args.host, args.port)
        print(f"viber-sim listening on {sim.base_url} (vendor http_base_url), "
              f"reports to {config.webhook_url or 'nowhere'}", flush=True)
        try:
            while True:
                await asyncio.sleep(1.0)
                c = sim.counters
                print(f"sends={c['sends']} accepted={c['accepted']} throttled={c['throttled']} "
                      f"rejected={c['rejected']} reports={c['reports_sent']} "
                      f"report_failures={c['reports_failed']}", flush=True)
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def cli_command() -> tuple[str, Any, Any]:
    """``herald viber-sim``: (help, add_args(parser), func(args)) for gateway.runtime.cli."""
    return "run the Viber provider simulator", _add_args, _run
