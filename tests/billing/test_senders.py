"""Sender IDs: the approval chain up the partner tree, its events, and the pipeline's check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts import senders
from accounts.senders import Document
from accounts.tenancy import load_scope
from config.errors import Conflict, Forbidden, Invalid, NotFound
from tests.billing.conftest import make_partner

NOW = datetime.now(UTC)


async def _tree(conn, owner):
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "Resell")
    rscope = await load_scope(conn, reseller.id)
    client = await make_partner(conn, rscope, reseller.id, "client", "Shop")
    return rscope, await load_scope(conn, client.id, user_id=None)


async def test_reseller_passes_up_and_owner_approval_makes_it_usable(conn, owner):
    rscope, cscope = await _tree(conn, owner)
    sid = await senders.request_sender_id(
        conn, cscope, channel="sms", sender="ShopNews", comment="our brand",
        documents=[Document("licence.pdf", "store/abc", "application/pdf", 1234)])
    assert (sid.status, sid.state, sid.pending_partner_id) == ("waiting", "new", rscope.partner_id)
    assert not await senders.is_usable(conn, cscope.partner_id, "sms", "ShopNews", NOW)

    waiting = await senders.list_sender_ids(conn, rscope, awaiting_me=True)
    assert [s.id for s in waiting] == [sid.id]
    with pytest.raises(Conflict):                    # not the owner's turn yet
        await senders.approve(conn, owner, sid.id)

    sid = await senders.approve(conn, rscope, sid.id, comment="looks fine")
    assert (sid.status, sid.state, sid.pending_partner_id) == ("waiting", "in_progress", owner.partner_id)
    assert not await senders.is_usable(conn, cscope.partner_id, "sms", "ShopNews", NOW)
    with pytest.raises(Conflict):                    # the reseller already decided
        await senders.approve(conn, rscope, sid.id)

    until = NOW + timedelta(days=30)
    sid = await senders.approve(conn, owner, sid.id, valid_until=until)
    assert (sid.status, sid.state, sid.pending_partner_id) == ("enabled", "confirmed", None)
    assert sid.days_left(NOW) in (29, 30)
    assert await senders.is_usable(conn, cscope.partner_id, "sms", "ShopNews", NOW)
    assert not await senders.is_usable(conn, cscope.partner_id, "viber", "ShopNews", NOW)
    assert not await senders.is_usable(conn, cscope.partner_id, "sms", "ShopNews", until)
    assert await senders.usable_senders(conn, cscope.partner_id, "sms", NOW) == ["ShopNews"]
    # the pipeline's batch form answers as is_usable does, key by key
    keys = [(cscope.partner_id, "sms", "ShopNews"), (cscope.partner_id, "viber", "ShopNews"),
            (cscope.partner_id, "sms", "shopnews"), (rscope.partner_id, "sms", "ShopNews"),
            (cscope.partner_id, "sms", "ShopNews")]
    assert await senders.usable(conn, keys, NOW) == {(cscope.partner_id, "sms", "ShopNews")}
    assert await senders.usable(conn, keys, until) == set()
    assert await senders.usable(conn, [], NOW) == set()

    steps = await senders.events(conn, cscope, sid.id)
    assert [(e.action, e.state, e.actor_partner_id) for e in steps] == [
        ("requested", "new", cscope.partner_id),
        ("passed_on", "in_progress", rscope.partner_id),
        ("approved", "confirmed", owner.partner_id),
    ]
    assert steps[1].comment == "looks fine"
    (doc,) = await senders.documents(conn, owner, sid.id)
    assert (doc.file_name, doc.storage_key, doc.size_bytes) == ("licence.pdf", "store/abc", 1234)


async def test_decline_anywhere_stops_the_request(conn, owner):
    rscope, cscope = await _tree(conn, owner)
    first = await senders.request_sender_id(conn, cscope, channel="sms", sender="First")
    first = await senders.decline(conn, rscope, first.id, comment="not yours")
    assert (first.status, first.state, first.pending_partner_id) == ("disabled", "declined", None)
    with pytest.raises(Conflict):
        await senders.approve(conn, owner, first.id)

    second = await senders.request_sender_id(conn, cscope, channel="viber", sender="Second Shop")
    await senders.approve(conn, rscope, second.id)
    second = await senders.decline(conn, owner, second.id)
    assert second.state == "declined"
    assert not await senders.is_usable(conn, cscope.partner_id, "viber", "Second Shop", NOW)
    actions = [e.action for e in await senders.events(conn, cscope, second.id)]
    assert actions == ["requested", "passed_on", "declined"]


async def test_cancel_unsubscribe_change_period_and_expiry(conn, owner):
    rscope, cscope = await _tree(conn, owner)
    sid = await senders.request_sender_id(conn, cscope, channel="sms", sender="Cancel")
    with pytest.raises(Conflict):                    # only the requester cancels its own request
        await senders.cancel(conn, rscope, sid.id)
    assert (await senders.cancel(conn, cscope, sid.id)).state == "canceled"

    # a new request for the same name is allowed once the old one is over
    sid = await senders.request_sender_id(conn, cscope, channel="sms", sender="cancel")
    with pytest.raises(Conflict):
        await senders.request_sender_id(conn, cscope, channel="sms", sender="CANCEL")
    await senders.approve(conn, rscope, sid.id)
    await senders.approve(conn, owner, sid.id, valid_until=NOW + timedelta(days=10))
    with pytest.raises(Forbidden):
        await senders.change_period(conn, rscope, sid.id, NOW + timedelta(days=90))
    sid = await senders.change_period(conn, owner, sid.id, NOW - timedelta(seconds=1))
    assert sid.state == "period_changed"
    assert not await senders.is_usable(conn, cscope.partner_id, "sms", "cancel", NOW)
    assert await senders.expire_due(conn, NOW) == 1
    sid = await senders.get_sender_id(conn, cscope, sid.id)
    assert (sid.status, sid.state) == ("disabled", "unsubscribed")
    assert [e.action for e in await senders.events(conn, owner, sid.id)][-1] == "expired"

    other = await senders.request_sender_id(conn, cscope, channel="sms", sender="Other")
    await senders.approve(conn, rscope, other.id)
    await senders.approve(conn, owner, other.id)    # no expiry
    assert await senders.is_usable(conn, cscope.partner_id, "sms", "Other", NOW + timedelta(days=3650))
    other = await senders.unsubscribe(conn, cscope, other.id, comment="no longer needed")
    assert (other.status, other.state) == ("disabled", "unsubscribed")
    with pytest.raises(Conflict):
        await senders.unsubscribe(conn, owner, other.id)


async def test_sender_ids_are_scoped_to_the_subtree(conn, owner):
    _, cscope = await _tree(conn, owner)
    stranger = await load_scope(conn, (await make_partner(conn, owner, owner.partner_id, "client", "X")).id)
    sid = await senders.request_sender_id(conn, cscope, channel="sms", sender="Mine")
    for scope in (stranger,):
        with pytest.raises(NotFound):
            await senders.get_sender_id(conn, scope, sid.id)
        with pytest.raises(NotFound):
            await senders.approve(conn, scope, sid.id)
        with pytest.raises(NotFound):
            await senders.events(conn, scope, sid.id)
    assert await senders.list_sender_ids(conn, stranger) == []
    assert [s.id for s in await senders.list_sender_ids(conn, owner)] == [sid.id]


@pytest.mark.parametrize(("channel", "sender"), [
    ("sms", "TwelveLetter"), ("sms", ""), ("sms", "1234567890123456"), ("sms", "Bad\u00e9"),
    ("viber", "x" * 33), ("fax", "Fine"),
])
def test_invalid_sender_ids(channel, sender):
    with pytest.raises(Invalid):
        senders.validate_sender(channel, sender)


@pytest.mark.parametrize(("channel", "sender"), [
    ("sms", "Shop"), ("sms", "Shop 24"), ("sms", "+447700900123"), ("sms", "123456789012345"),
    ("viber", "Shop Éclair"),
])
def test_valid_sender_ids(channel, sender):
    assert senders.validate_sender(channel, f"  {sender} ") == sender
