"""The client against the provider simulator on a real port, and the simulator's reports."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web

from viber.client import ViberClient
from viber.provider import Permanent, Temporary, Throttled, ViberMessage, parse_status_report
from viber.simulator import ViberSimConfig, ViberSimulator

MESSAGE = ViberMessage("Herald", "79161234567", "Hello", "promotion", image_url="https://i/x.png",
                       button_url="https://b", button_caption="Open", ttl=60, reference="ref-1")


class Webhook:
    """A local receiver of status reports answering ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[tuple[str, dict]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.headers.get("Authorization", ""), await request.json()))
        return web.json_response({}, status=self.status)

    async def __aenter__(self) -> Webhook:
        app = web.Application()
        app.router.add_post("/status", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/status"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


async def _until(check, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.02)


async def test_send_reaches_the_simulator_and_reports_come_back():
    async with Webhook() as hook:
        sim = ViberSimulator(ViberSimConfig(token="tok", webhook_url=hook.url, delay=0.01,
                                            seen_delay=0.01, delivered=0, seen=1))
        await sim.start()
        client = ViberClient(sim.base_url + "/", "tok")
        try:
            message_id = await client.send(MESSAGE)
            (got,) = sim.received
            assert got == {"sender": "Herald", "phone": "79161234567", "text": "Hello",
                           "traffic_type": "promotion", "image_url": "https://i/x.png",
                           "button": {"url": "https://b", "caption": "Open"}, "ttl": 60,
                           "reference": "ref-1", "message_id": message_id}
            await _until(lambda: len(hook.calls) == 2)
            assert [auth for auth, _ in hook.calls] == ["Bearer tok", "Bearer tok"]
            reports = [parse_status_report(body) for _, body in hook.calls]
            assert [(r.message_id, r.status) for r in reports] == [
                (message_id, "delivered"), (message_id, "seen")]
        finally:
            await client.close()
            await sim.stop()


async def test_wrong_token_throttling_and_refusal_raise_their_kind():
    sim = ViberSimulator(ViberSimConfig(token="tok", throttle_ratio=1.0, retry_after=3))
    await sim.start()
    stranger, client = ViberClient(sim.base_url, "nope"), ViberClient(sim.base_url, "tok")
    try:
        with pytest.raises(Permanent) as wrong:
            await stranger.send(MESSAGE)
        assert wrong.value.status == 401
        with pytest.raises(Throttled) as throttled:
            await client.send(MESSAGE)
        assert throttled.value.retry_after == 3.0
        sim.config.throttle_ratio, sim.config.reject_ratio = 0.0, 1.0
        with pytest.raises(Permanent) as refused:
            await client.send(MESSAGE)
        assert (refused.value.status, refused.value.code) == (400, "no_viber")
        assert sim.received == [] and sim.counters["throttled"] == 1
    finally:
        await stranger.close()
        await client.close()
        await sim.stop()


async def test_no_answer_is_temporary():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ViberClient(f"http://127.0.0.1:{port}", "tok", timeout=2.0)
    try:
        with pytest.raises(Temporary):
            await client.send(MESSAGE)
    finally:
        await client.close()


async def test_a_refused_report_is_retried_then_given_up():
    async with Webhook(status=503) as hook:
        sim = ViberSimulator(ViberSimConfig(webhook_url=hook.url, report_attempts=3))
        await sim.start()
        try:
            assert await sim.report("m1", "delivered") == 503
            assert len(hook.calls) == 3 and sim.counters["reports_failed"] == 1
            hook.status = 401
            assert await sim.report("m2", "delivered") == 401
            assert len(hook.calls) == 4  # 401: the webhook will never take it
            assert json.dumps(hook.calls[-1][1]["message_id"]) == '"m2"'
        finally:
            await sim.stop()


def test_cli_builds_the_simulator_config():
    import argparse

    from gateway.runtime.cli import simulator_commands
    from viber.simulator import config_from_args

    help_text, add_args, _ = simulator_commands()["viber-sim"]
    parser = argparse.ArgumentParser()
    add_args(parser)
    args = parser.parse_args(["--token", "t", "--webhook", "http://h/api/viber/status/3",
                              "--seen", "2", "--throttle", "0.1", "--silent", "1"])
    config = config_from_args(args)
    assert "Viber" in help_text and args.port == 8089
    assert (config.token, config.webhook_url, config.seen, config.throttle_ratio,
            config.silent, config.delivered) == ("t", "http://h/api/viber/status/3", 2.0, 0.1,
                                                 1.0, 1.0)
