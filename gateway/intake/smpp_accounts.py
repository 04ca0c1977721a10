"""SMPP accounts: the credentials an end user binds to Herald's SMPP server with (0350),
and the bind decision as a pure function (``gateway/intake/README.md``)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from accounts.users import hash_password
from config.errors import Conflict, Invalid, NotFound
from smpp.pdu import CommandStatus

Conn = asyncpg.Connection | asyncpg.Pool
S = CommandStatus


@dataclass(frozen=True, slots=True)
class SmppAccount:
    id: int
    partner_id: int
    user_id: int | None
    system_id: str
    password_hash: str
    allowed_ips: tuple[str, ...]
    max_binds: int
    tps: int | None
    enabled: bool
    created_at: datetime
    partner_active: bool = True


_SELECT = """
SELECT a.id, a.partner_id, a.user_id, a.system_id, a.password_hash,
       a.allowed_ips::text[] AS allowed_ips, a.max_binds, a.tps, a.enabled, a.created_at,
       p.status = 'active' AS partner_active
FROM smpp_accounts a JOIN partners p ON p.id = a.partner_id
"""


def _account(record: asyncpg.Record | None) -> SmppAccount | None:
    if record is None:
        return None
    values = dict(record)
    values["allowed_ips"] = tuple(values["allowed_ips"] or ())
    return SmppAccount(**{f.name: values[f.name] for f in fields(SmppAccount)})


def _networks(allowed: Sequence[str]) -> list[str]:
    out = []
    for item in allowed:
        try:
            out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise Invalid(f"{item!r} is not an IP address or CIDR range", field="allowed_ips") from None
    return out


def _check_system_id(system_id: str) -> None:
    # SMPP 3.4 §4.1.1: system_id is a C-octet string of at most 16 octets, NUL included.
    if not system_id or len(system_id.encode("ascii", "replace")) > 15 or not system_id.isprintable():
        raise Invalid("system_id must be 1 to 15 printable ASCII characters", field="system_id")


async def create_account(
    conn: Conn, partner_id: int, system_id: str, password: str, *, user_id: int | None = None,
    allowed_ips: Sequence[str] = (), max_binds: int = 4, tps: int | None = None,
) -> SmppAccount:
    """A new account; Conflict when the ``system_id`` is taken."""
    _check_system_id(system_id)
    if not password or len(password.encode()) > 8:
        # SMPP 3.4 §4.1.1: password is at most 9 octets with its NUL.
        raise Invalid("password must be 1 to 8 characters (SMPP 3.4 limit)", field="password")
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        account_id = await conn.fetchval(
            """INSERT INTO smpp_accounts (partner_id, user_id, system_id, password_hash, allowed_ips,
                                          max_binds, tps)
               VALUES ($1, $2, $3, $4, $5::cidr[], $6, $7) RETURNING id""",
            partner_id, user_id, system_id, password_hash, _networks(allowed_ips), max_binds, tps,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"system_id {system_id!r} is already in use") from None
    account = await get_account(conn, account_id)
    assert account is not None
    return account


async def get_by_system_id(conn: Conn, system_id: str) -> SmppAccount | None:
    return _account(await conn.fetchrow(_SELECT + "WHERE a.system_id = $1", system_id))


async def get_account(conn: Conn, account_id: int) -> SmppAccount | None:
    return _account(await conn.fetchrow(_SELECT + "WHERE a.id = $1", account_id))


async def set_password(conn: Conn, account_id: int, password: str) -> None:
    password_hash = await asyncio.to_thread(hash_password, password)
    result = await conn.execute(
        "UPDATE smpp_accounts SET password_hash = $2, updated_at = now() WHERE id = $1",
        account_id, password_hash,
    )
    if result != "UPDATE 1":
        raise NotFound("no such SMPP account")


_UPDATABLE = {"allowed_ips", "max_binds", "tps", "enabled", "user_id"}


async def update_account(conn: Conn, account_id: int, **changes: object) -> SmppAccount:
    """Change ``allowed_ips``, ``max_binds``, ``tps``, ``enabled`` or ``user_id``."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    if "allowed_ips" in changes:
        changes["allowed_ips"] = _networks(changes["allowed_ips"])  # type: ignore[arg-type]
    sets = ", ".join(
        f"{name} = ${i}{'::cidr[]' if name == 'allowed_ips' else ''}"
        for i, name in enumerate(changes, start=2)
    )
    if sets:
        await conn.execute(f"UPDATE smpp_accounts SET {sets}, updated_at = now() WHERE id = $1",
                           account_id, *changes.values())
    account = await get_account(conn, account_id)
    if account is None:
        raise NotFound("no such SMPP account")
    return account


def ip_allowed(allowed: Sequence[str], peer_ip: str | None) -> bool:
    """Whether ``peer_ip`` lies in one of the ``allowed`` networks (empty list: any address)."""
    if not allowed:
        return True
    if not peer_ip:
        return False
    try:
        ip = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    for net in allowed:
        network = ipaddress.ip_network(net, strict=False)
        if ip.version == network.version and ip in network:
            return True
    return False


def bind_verdict(
    account: SmppAccount | None, *, password_ok: bool, peer_ip: str | None, bound_now: int
) -> int:
    """The ``command_status`` to answer a bind with (``ESME_ROK`` accepts it).

    The order matters: nothing about an account is revealed before its password
    is proven, so a wrong password on a disabled account still says RINVPASWD.
    """
    if account is None:
        return S.ESME_RINVSYSID
    if not password_ok:
        return S.ESME_RINVPASWD
    if not account.enabled or not account.partner_active:
        return S.ESME_RBINDFAIL
    if not ip_allowed(account.allowed_ips, peer_ip):
        return S.ESME_RBINDFAIL
    if bound_now >= account.max_binds:
        return S.ESME_RBINDFAIL
    return S.ESME_ROK
