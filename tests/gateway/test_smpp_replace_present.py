"""submit_sm with replace_if_present_flag (SMPP 3.4 §5.2.18) and sm_default_msg_id
(§5.2.19) at Herald's SMPP server: the pending message is taken back (FAILED, refunded)
and the new one accepted; canned messages are refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import pytest_asyncio

from gateway.intake.smpp_accounts import SmppAccount, create_account
from gateway.intake.smpp_submits import field_refusal, replaceable, submission_of
from gateway.store.messages import Status
from smpp.pdu import (
    CommandStatus,
    MessageState,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp.receipts import parse_receipt
from smpp.udh import concat_udh
from tests.gateway.smpp_stack import Esme, build_stack
from tests.gateway.world import RU_MOBILE, SENDER, balance

S = CommandStatus
OTHER_MOBILE = "79160000002"


def submit(text: str = "Hello", to: str = RU_MOBILE, **kw) -> SubmitSm:
    return SubmitSm(source_addr=SENDER, destination_addr=to, short_message=text.encode(),
                    registered_delivery=1, **kw)


def replacing(text: str = "Hello again", **kw) -> SubmitSm:
    return submit(text, replace_if_present_flag=1, **kw)


# --- pure ------------------------------------------------------------------------------

def test_the_spec_value_of_invalid_default_message_id():
    # SMPP 3.4 §5.1.3: 0x49 is ESME_RINVSRCNPI; the predefined-message status is 0x63.
    assert S.ESME_RINVDFTMSGID == 0x63 and S.ESME_RINVSRCNPI == 0x49


@pytest.mark.parametrize(("pdu", "status"), [
    (submit(), None),
    (submit(replace_if_present_flag=1), None),
    (submit(sm_default_msg_id=1), S.ESME_RINVDFTMSGID),
    (submit(replace_if_present_flag=2), S.ESME_RINVREPFLAG),
    (SubmitMulti(sm_default_msg_id=7), S.ESME_RINVDFTMSGID),
    (ReplaceSm(message_id="x", sm_default_msg_id=1), S.ESME_RINVDFTMSGID),
    (ReplaceSm(message_id="x"), None),
])
def test_field_refusal(pdu, status):
    assert field_refusal(pdu) == status


ACCOUNT = SmppAccount(id=1, partner_id=2, user_id=3, system_id="acme", password_hash="",
                      allowed_ips=(), max_binds=1, tps=None, enabled=True,
                      created_at=datetime(2026, 11, 25, tzinfo=UTC))


def test_service_type_is_kept_for_messages_herald_encodes():
    plain = submission_of(ACCOUNT, "s", submit(service_type="CMT"))
    assert plain.service_type == "CMT" and replaceable(plain)
    assert submission_of(ACCOUNT, "s", submit()).service_type is None
    part = SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE, esm_class=0x40,
                    service_type="CMT", short_message=concat_udh(5, 2, 1) + b"half")
    split = submission_of(ACCOUNT, "s", part)
    assert (split.concat_ref, split.concat_total, split.concat_seq, split.concat_wide) == (
        5, 2, 1, False)
    assert split.service_type == "CMT" and not replaceable(split)
    binary = submission_of(ACCOUNT, "s", submit(data_coding=4, service_type="CMT"))
    assert (binary.encoding, binary.udhi) == ("binary", False) and not replaceable(binary)
    assert all(s.client_ref is None for s in (plain, split, binary))


# --- over SMPP, with nothing leaving the send queue ---------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def stack(pool, redis, settings):
    s = await build_stack(pool, redis, settings)
    await s.connectors.stop()   # nothing is claimed: messages stay pending
    yield s
    s.connectors.connectors.clear()
    await s.stop()


async def _status(pool, message_id: str) -> tuple[str, str | None]:
    row = await pool.fetchrow("SELECT status, error_text FROM messages WHERE id = $1",
                              uuid.UUID(message_id))
    return row["status"], row["error_text"]


async def test_a_pending_message_is_replaced_and_refunded(stack, pool):
    esme = Esme()
    client = await stack.client(handler=esme)
    first = await client.submit(submit("short"))
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")
    # A text of two parts replaces one of one: each is charged for its own parts.
    second = await client.submit(replacing("x" * 170))
    assert second.status == S.ESME_ROK and second.message_id != first.message_id
    assert await _status(pool, first.message_id) == (Status.FAILED, f"replaced by {second.message_id}")
    assert await _status(pool, second.message_id) == (Status.BILLED, None)
    assert await balance(pool, stack.world.partner_id) == Decimal("99.90")
    assert await pool.fetchval("SELECT count(*) FROM send_queue WHERE message_id = $1",
                               uuid.UUID(first.message_id)) == 0
    # The replaced message's receipt, as for cancel_sm.
    await esme.wait(lambda: esme.receipts)
    (receipt,) = esme.receipts
    assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == first.message_id
    assert receipt.tlvs[Tag.MESSAGE_STATE] == MessageState.REJECTED
    assert parse_receipt(receipt.short_message).message_id == first.message_id


async def test_only_the_same_sender_destination_and_service_type_is_replaced(stack, pool):
    client = await stack.client()
    typed = await client.submit(submit(service_type="A"))
    elsewhere = await client.submit(submit(to=OTHER_MOBILE))
    untyped = await client.submit(submit())
    other_type = await client.submit(replacing(service_type="B"))
    assert other_type.status == S.ESME_ROK
    assert [(await _status(pool, m.message_id))[0] for m in (typed, elsewhere, untyped)] == [
        Status.BILLED] * 3
    same_type = await client.submit(replacing(service_type="A"))
    assert (await _status(pool, typed.message_id))[0] == Status.FAILED
    no_type = await client.submit(replacing())
    assert (await _status(pool, untyped.message_id))[0] == Status.FAILED
    for kept in (elsewhere, other_type, same_type, no_type):
        assert (await _status(pool, kept.message_id))[0] == Status.BILLED


async def test_a_message_held_by_a_worker_or_of_another_account_is_not_replaced(stack, pool):
    async with pool.acquire() as conn:
        await create_account(conn, stack.world.partner_id, "other", "secret2",
                             user_id=stack.world.user_id)
    client = await stack.client()
    other = await stack.client("other", "secret2")
    theirs = await other.submit(submit())
    claimed = await client.submit(submit())
    await pool.execute("UPDATE send_queue SET claimed_by = 'worker' WHERE message_id = $1",
                       uuid.UUID(claimed.message_id))
    new = await client.submit(replacing())
    assert new.status == S.ESME_ROK
    assert (await _status(pool, theirs.message_id))[0] == Status.BILLED
    assert (await _status(pool, claimed.message_id))[0] == Status.BILLED
    # with nothing pending it was an ordinary submit
    assert await balance(pool, stack.world.partner_id) == Decimal("99.85")


async def test_a_refused_replacement_replaces_nothing(stack, pool):
    client = await stack.client()
    first = await client.submit(submit())
    refused = await client.submit(replacing(""))
    assert refused.status == S.ESME_RINVMSGLEN
    assert (await _status(pool, first.message_id))[0] == Status.BILLED
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")


async def test_pipelined_replacements_leave_the_last_one(stack, pool):
    client = await stack.client()
    await client.submit(submit("original"))
    results = await asyncio.gather(*(client.submit(replacing(f"take {i}")) for i in range(4)))
    assert [r.status for r in results] == [S.ESME_ROK] * 4
    rows = await pool.fetch("SELECT status FROM messages WHERE destination = $1", RU_MOBILE)
    assert sorted(r["status"] for r in rows) == [Status.BILLED] + [Status.FAILED] * 4
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")


async def test_submit_multi_replaces_per_destination(stack, pool):
    client = await stack.client()
    first = await client.submit(submit())
    elsewhere = await client.submit(submit(to=OTHER_MOBILE))
    multi = await client.submit(SubmitMulti(
        source_addr=SENDER, short_message=b"to both", replace_if_present_flag=1,
        dest_addresses=[SmeAddress(1, 1, RU_MOBILE), SmeAddress(1, 1, OTHER_MOBILE)]))
    assert multi.status == S.ESME_ROK and multi.response.unsuccess_smes == []
    assert (await _status(pool, first.message_id))[0] == Status.FAILED
    assert (await _status(pool, elsewhere.message_id))[0] == Status.FAILED
    pending = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'BILLED'")
    assert pending == 2


async def test_refusals_of_unserved_fields(stack, pool):
    client = await stack.client()
    first = await client.submit(submit("keep me"))
    part = submit(esm_class=0x40, replace_if_present_flag=1)
    part.short_message = concat_udh(9, 2, 1) + b"first half"
    cases = [
        (submit(sm_default_msg_id=3), S.ESME_RINVDFTMSGID),
        (replacing(sm_default_msg_id=3), S.ESME_RINVDFTMSGID),
        (submit(replace_if_present_flag=2), S.ESME_RINVREPFLAG),
        (part, S.ESME_RINVSUBREP),
        (replacing(data_coding=4), S.ESME_RINVSUBREP),
        (SubmitMulti(source_addr=SENDER, short_message=b"x", sm_default_msg_id=1,
                     dest_addresses=[SmeAddress(1, 1, RU_MOBILE)]), S.ESME_RINVDFTMSGID),
        (ReplaceSm(message_id=first.message_id, source_addr=SENDER, short_message=b"canned",
                   sm_default_msg_id=1), S.ESME_RINVDFTMSGID),
    ]
    for pdu, status in cases:
        assert (await client.submit(pdu)).status == status, pdu
    row = await pool.fetchrow("SELECT status, text FROM messages WHERE id = $1",
                              uuid.UUID(first.message_id))
    assert (row["status"], row["text"]) == (Status.BILLED, "keep me")
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
