"""Herald's SMPP server end to end: binds, submits into the pipeline, receipts back."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest_asyncio

from gateway.intake.smpp_accounts import update_account
from gateway.store.messages import Status
from smpp.pdu import (
    BindTransceiver,
    CancelSm,
    CommandStatus,
    MessageState,
    QuerySm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp.receipts import parse_receipt
from smpp.simulator import SimConfig
from smpp.udh import concat_udh
from tests.gateway.smpp_stack import Esme, build_stack, eventually
from tests.gateway.world import RU_MOBILE, SENDER, balance
from tests.smpp.smsc_helpers import RawPeer

S = CommandStatus


@pytest_asyncio.fixture(loop_scope="session")
async def stack(pool, redis, settings):
    s = await build_stack(pool, redis, settings)
    yield s
    await s.stop()


async def _outbox_empty(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM smpp_outbox") == 0


def submit(text: str = "Hello over SMPP", to: str = RU_MOBILE, **kw) -> SubmitSm:
    return SubmitSm(source_addr=SENDER, destination_addr=to, short_message=text.encode(),
                    registered_delivery=1, **kw)


async def test_binds_are_checked(stack, pool):
    peer = await RawPeer.connect(stack.ingress.port)
    assert (await peer.bind("acme", "wrong")).command_status == S.ESME_RINVPASWD
    peer = await RawPeer.connect(stack.ingress.port)
    assert (await peer.bind("nobody", "x")).command_status == S.ESME_RINVSYSID
    async with pool.acquire() as conn:
        await update_account(conn, stack.account_id, allowed_ips=["10.0.0.0/8"])
    peer = await RawPeer.connect(stack.ingress.port)
    assert (await peer.bind("acme", "secret1")).command_status == S.ESME_RBINDFAIL
    async with pool.acquire() as conn:
        await update_account(conn, stack.account_id, allowed_ips=["127.0.0.0/8"], max_binds=1)
    first = await RawPeer.connect(stack.ingress.port)
    assert (await first.bind("acme", "secret1")).command_status == S.ESME_ROK
    second = await RawPeer.connect(stack.ingress.port)
    assert (await second.request(BindTransceiver(system_id="acme", password="secret1"))
            ).command_status == S.ESME_RBINDFAIL
    await first.close()


async def test_submit_is_charged_sent_and_the_receipt_comes_back(stack, pool):
    esme = Esme()
    client = await stack.client(handler=esme)
    result = await client.submit(submit())
    assert result.status == S.ESME_ROK
    message_id = uuid.UUID(result.message_id)
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)
    assert row["origin"] == "smpp" and row["smpp_account_id"] == stack.account_id
    assert row["status"] in ("BILLED", "SENT", "DELIVERED")
    await esme.wait(lambda: esme.receipts)
    receipt = esme.receipts[0]
    assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == str(message_id)
    assert parse_receipt(receipt.short_message).message_id == str(message_id)
    assert receipt.source_addr == RU_MOBILE and receipt.destination_addr == SENDER
    assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id) == "DELIVERED"
    assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(message_id)) == "delivered"
    assert [r.text for r in stack.sim.received] == ["Hello over SMPP"]
    await eventually(lambda: _outbox_empty(pool))


async def test_refusals_answer_the_pipeline_status(stack, pool):
    client = await stack.client()
    bad_sender = await client.submit(SubmitSm(
        source_addr="Nobody", destination_addr=RU_MOBILE, short_message=b"x"))
    assert bad_sender.status == S.ESME_RINVSRCADR
    bad_number = await client.submit(submit(to="123"))
    assert bad_number.status == S.ESME_RINVDSTADR
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_client_split_parts_keep_their_header_and_are_charged_per_pdu(stack, pool):
    client = await stack.client()
    parts = [concat_udh(7, 2, 1) + b"first half ", concat_udh(7, 2, 2) + b"second half"]
    results = [await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                            esm_class=0x40, short_message=p)) for p in parts]
    assert all(r.status == S.ESME_ROK for r in results)
    rows = await pool.fetch("SELECT parts, text, concat_ref, concat_total, concat_seq, concat_wide"
                            " FROM messages ORDER BY created_at")
    assert [tuple(r) for r in rows] == [(1, "first half ", 7, 2, 1, False),
                                        (1, "second half", 7, 2, 2, False)]
    assert await balance(pool, stack.world.partner_id) == Decimal("99.90")
    await eventually(lambda: len(stack.sim.received) == 2)
    assert sorted(r.text for r in stack.sim.received) == ["first half ", "second half"]


async def test_submit_multi_query_and_cancel_only_own(stack, pool):
    client = await stack.client()
    resp = await client.submit(SubmitMulti(
        source_addr=SENDER, short_message=b"to many",
        dest_addresses=[SmeAddress(1, 1, "79160000001"), SmeAddress(1, 1, "12")]))
    assert resp.status == S.ESME_ROK
    assert [u.destination_addr for u in resp.response.unsuccess_smes] == ["12"]
    mid = resp.message_id
    query = await client.submit(QuerySm(message_id=mid, source_addr=SENDER))
    assert query.status == S.ESME_ROK
    # a message of another account is unknown to this one
    async with pool.acquire() as conn:
        await conn.execute("UPDATE messages SET smpp_account_id = NULL WHERE id = $1", uuid.UUID(mid))
    assert (await client.submit(QuerySm(message_id=mid))).status == S.ESME_RQUERYFAIL
    assert (await client.submit(CancelSm(message_id=mid))).status == S.ESME_RCANCELFAIL


async def test_cancel_a_queued_message_refunds_it(pool, redis, settings):
    stack = await build_stack(pool, redis, settings)
    try:
        await stack.connectors.stop()   # nothing leaves the queue
        client = await stack.client()
        sent = await client.submit(submit())
        assert await balance(pool, stack.world.partner_id) == Decimal("99.95")
        cancel = await client.submit(CancelSm(message_id=sent.message_id, source_addr=SENDER))
        assert cancel.status == S.ESME_ROK
        row = await pool.fetchrow("SELECT status FROM messages WHERE id = $1", uuid.UUID(sent.message_id))
        assert row["status"] == Status.FAILED
        assert await balance(pool, stack.world.partner_id) == Decimal("100.00")
    finally:
        stack.connectors.connectors.clear()
        await stack.stop()


async def _receipt_reaches_the_next_bind(stack, pool, message_id: str) -> None:
    """A client binding again gets the receipt kept for it, and the outbox empties."""
    esme = Esme()
    await stack.client(handler=esme)
    await esme.wait(lambda: esme.receipts)
    assert esme.receipts[0].tlvs[Tag.RECEIPTED_MESSAGE_ID] == message_id
    await eventually(lambda: _outbox_empty(pool))


async def test_receipts_wait_for_a_client_that_is_away(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.3))
    try:
        client = await stack.client()
        result = await client.submit(submit())
        await client.close(grace=0.2)     # gone before the receipt comes
        stack.clients.clear()
        await eventually(lambda: pool.fetchval("SELECT count(*) FROM smpp_outbox"))
        await _receipt_reaches_the_next_bind(stack, pool, result.message_id)
    finally:
        await stack.stop()


async def test_receipts_for_a_client_bound_here_are_handed_over_without_a_poll(pool, redis, settings):
    stack = await build_stack(pool, redis, settings)
    try:
        # Whatever the dispatcher claims from the table is seen here: nothing should be.
        outbox = stack.ingress.outbox
        claimed: list = []
        claim = outbox._claim

        async def seen_claim(limit: int) -> list:
            rows = await claim(limit)
            claimed.extend(rows)
            return rows

        outbox._claim = seen_claim
        esme = Esme()
        client = await stack.client(handler=esme)
        results = [await client.submit(submit()) for _ in range(3)]
        await esme.wait(lambda: len(esme.receipts) == 3)
        assert {r.tlvs[Tag.RECEIPTED_MESSAGE_ID] for r in esme.receipts} == {
            r.message_id for r in results}
        assert claimed == []  # handed over after the commit, never claimed
        assert all(parse_receipt(r.short_message).state == MessageState.DELIVERED for r in esme.receipts)
        await eventually(lambda: _outbox_empty(pool))
    finally:
        await stack.stop()


async def test_a_receipt_handed_over_to_a_client_gone_meanwhile_waits_for_it(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.3))
    try:
        outbox = stack.ingress.outbox
        client = await stack.client()
        result = await client.submit(submit())
        # The hook sees the receiver bound; it is gone when the rows are sent.
        takes, outbox.takes = outbox.takes, lambda account_id: True
        await client.close(grace=0.2)
        stack.clients.clear()
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) FROM smpp_outbox WHERE claimed_by IS NULL AND attempts = 1"))
        outbox.takes = takes
        await _receipt_reaches_the_next_bind(stack, pool, result.message_id)
    finally:
        await stack.stop()
