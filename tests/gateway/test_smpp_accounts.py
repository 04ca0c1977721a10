"""SMPP accounts: storage, hashing, and the bind decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.errors import Conflict, Invalid
from gateway.intake.smpp_accounts import (
    SmppAccount,
    bind_verdict,
    create_account,
    get_by_system_id,
    ip_allowed,
    set_password,
    update_account,
)
from smpp.pdu import CommandStatus

S = CommandStatus


def account(**kw) -> SmppAccount:
    base = dict(id=1, partner_id=2, user_id=None, system_id="acme", password_hash="x",
                allowed_ips=(), max_binds=2, tps=None, enabled=True, created_at=datetime.now(UTC))
    base.update(kw)
    return SmppAccount(**base)


def test_ip_allowed():
    assert ip_allowed((), "203.0.113.9")
    assert ip_allowed(("10.0.0.0/8", "192.168.1.7/32"), "10.2.3.4")
    assert ip_allowed(("192.168.1.7/32",), "::ffff:192.168.1.7")
    assert not ip_allowed(("10.0.0.0/8",), "11.0.0.1")
    assert not ip_allowed(("10.0.0.0/8",), None)
    assert not ip_allowed(("10.0.0.0/8",), "not-an-ip")
    assert ip_allowed(("2001:db8::/32",), "2001:db8::1")


@pytest.mark.parametrize(("kw", "verdict", "expected"), [
    ({}, dict(password_ok=True, peer_ip="1.2.3.4", bound_now=0), S.ESME_ROK),
    ({}, dict(password_ok=False, peer_ip="1.2.3.4", bound_now=0), S.ESME_RINVPASWD),
    ({"enabled": False}, dict(password_ok=False, peer_ip="1.2.3.4", bound_now=0), S.ESME_RINVPASWD),
    ({"enabled": False}, dict(password_ok=True, peer_ip="1.2.3.4", bound_now=0), S.ESME_RBINDFAIL),
    ({"partner_active": False}, dict(password_ok=True, peer_ip="1.2.3.4", bound_now=0), S.ESME_RBINDFAIL),
    ({"allowed_ips": ("10.0.0.0/8",)}, dict(password_ok=True, peer_ip="1.2.3.4", bound_now=0),
     S.ESME_RBINDFAIL),
    ({}, dict(password_ok=True, peer_ip="1.2.3.4", bound_now=2), S.ESME_RBINDFAIL),
])
def test_bind_verdict(kw, verdict, expected):
    assert bind_verdict(account(**kw), **verdict) == expected


def test_unknown_system_id():
    assert bind_verdict(None, password_ok=False, peer_ip=None, bound_now=0) == S.ESME_RINVSYSID


async def test_create_find_update(conn):
    owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    created = await create_account(conn, owner, "bulk1", "pw123", allowed_ips=["10.1.0.0/16", "127.0.0.1"],
                                   tps=50)
    assert created.password_hash.startswith("$argon2id$") and "pw123" not in created.password_hash
    assert created.allowed_ips == ("10.1.0.0/16", "127.0.0.1/32")
    found = await get_by_system_id(conn, "bulk1")
    assert found == created
    with pytest.raises(Invalid):
        await create_account(conn, owner, "bulk2", "pw", allowed_ips=["nonsense"])
    with pytest.raises(Invalid):
        await create_account(conn, owner, "x" * 16, "pw")
    with pytest.raises(Invalid):
        await create_account(conn, owner, "bulk3", "far-too-long-password")
    changed = await update_account(conn, created.id, max_binds=9, enabled=False, allowed_ips=[])
    assert (changed.max_binds, changed.enabled, changed.allowed_ips) == (9, False, ())
    await set_password(conn, created.id, "newpw")
    assert (await get_by_system_id(conn, "bulk1")).password_hash != created.password_hash
    with pytest.raises(Conflict):
        async with conn.transaction():
            await create_account(conn, owner, "bulk1", "pw")
