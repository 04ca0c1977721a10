"""Vendors: the carriers (over SMPP) and Viber providers (over HTTP) Herald sends traffic to.

Managed by the system owner only. A vendor has connection settings and
products; a product (name, currency, traffic type) contains the vendor's
rates per MCC/MNC, with MNC '*' as the country fallback. :func:`offers_for`
gives the routing side the vendors able to carry a destination, cheapest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg

from accounts.tenancy import Conn, Scope, require_owner
from billing.rates import RateRow, parse_rates_csv, rates_to_csv
from billing.refbook import ImportReport
from config.errors import Conflict, Invalid, NotFound

BindType = Literal["transceiver", "transmitter", "receiver"]


@dataclass(frozen=True, slots=True)
class Vendor:
    id: int
    name: str
    channel: str               # 'sms' | 'viber'
    protocol: str              # 'smpp' | 'http'
    smpp_host: str | None
    smpp_port: int | None
    system_id: str | None
    password: str | None = field(repr=False)
    system_type: str
    bind_type: BindType
    tps: int
    window_size: int
    http_base_url: str | None
    http_token: str | None = field(repr=False)
    enabled: bool
    created_at: datetime
    updated_at: datetime
    exclusive_bind: bool = False  # one bind across all processes (gateway.send.connectors)


_COLUMNS = ", ".join(f"v.{f.name}" for f in fields(Vendor))


@dataclass(frozen=True, slots=True)
class NewVendor:
    name: str
    channel: str = "sms"
    protocol: str = "smpp"
    smpp_host: str | None = None
    smpp_port: int | None = None
    system_id: str | None = None
    password: str | None = None
    system_type: str = ""
    bind_type: BindType = "transceiver"
    tps: int = 10
    window_size: int = 10
    http_base_url: str | None = None
    http_token: str | None = None
    enabled: bool = True
    exclusive_bind: bool = False


def _check(v: dict[str, Any]) -> dict[str, Any]:
    if not str(v.get("name", "x")).strip():
        raise Invalid("a vendor needs a name", field="name")
    if v.get("channel", "sms") not in ("sms", "viber"):
        raise Invalid("channel must be sms or viber", field="channel")
    protocol = v.get("protocol", "smpp")
    if protocol not in ("smpp", "http"):
        raise Invalid("protocol must be smpp or http", field="protocol")
    if protocol == "smpp":
        if not v.get("smpp_host") or not v.get("system_id"):
            raise Invalid("an SMPP vendor needs a host and a system_id", field="smpp_host")
        port = v.get("smpp_port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise Invalid("the SMPP port must be 1 to 65535", field="smpp_port")
        # SMPP 3.4 §5.2.1/§5.2.2: system_id up to 15 octets, password up to 8.
        if len(v["system_id"]) > 15:
            raise Invalid("system_id has at most 15 characters", field="system_id")
        if v.get("password") and len(v["password"]) > 8:
            raise Invalid("the SMPP password has at most 8 characters", field="password")
    if protocol == "http":
        url = v.get("http_base_url") or ""
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise Invalid("the base URL must be an http(s) URL", field="http_base_url")
    if "tps" in v and not (isinstance(v["tps"], int) and v["tps"] > 0):
        raise Invalid("TPS must be a positive integer", field="tps")
    if "window_size" in v and not (isinstance(v["window_size"], int) and v["window_size"] > 0):
        raise Invalid("the window must be a positive integer", field="window_size")
    if v.get("bind_type", "transceiver") not in ("transceiver", "transmitter", "receiver"):
        raise Invalid("bind type must be transceiver, transmitter or receiver", field="bind_type")
    return v


async def create_vendor(conn: asyncpg.Connection, scope: Scope, new: NewVendor) -> Vendor:
    require_owner(scope)
    v = _check({f.name: getattr(new, f.name) for f in fields(NewVendor)})
    names = list(v)
    try:
        async with conn.transaction():  # a savepoint: a Conflict leaves the caller's transaction usable
            row = await conn.fetchrow(
                f"INSERT INTO vendors AS v ({', '.join(names)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING {_COLUMNS}",
                *[v[n] for n in names],
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a vendor with this name exists", field="name") from exc
    return Vendor(**dict(row))


async def get_vendor(conn: Conn, scope: Scope, vendor_id: int) -> Vendor:
    require_owner(scope)
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM vendors v WHERE v.id = $1", vendor_id)
    if row is None:
        raise NotFound("no such vendor")
    return Vendor(**dict(row))


async def list_vendors(conn: Conn, scope: Scope) -> list[Vendor]:
    require_owner(scope)
    return [Vendor(**dict(r)) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM vendors v ORDER BY v.id")]


async def enabled_vendors(conn: Conn, channel: str | None = None) -> list[Vendor]:
    """Vendors the gateway should connect to (internal: no scope)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM vendors v WHERE v.enabled AND ($1::text IS NULL OR v.channel = $1) ORDER BY v.id",
        channel,
    )
    return [Vendor(**dict(r)) for r in rows]


async def update_vendor(conn: asyncpg.Connection, scope: Scope, vendor_id: int, **changes: Any) -> Vendor:
    current = await get_vendor(conn, scope, vendor_id)
    unknown = set(changes) - {f.name for f in fields(NewVendor)}
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    merged = {f.name: getattr(current, f.name) for f in fields(NewVendor)} | changes
    _check(merged)
    names = sorted(changes)
    if not names:
        return current
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    try:
        async with conn.transaction():
                row = await conn.fetchrow(
                f"UPDATE vendors v SET {sets}, updated_at = now() WHERE v.id = $1 RETURNING {_COLUMNS}",
                vendor_id, *[changes[n] for n in names],
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a vendor with this name exists", field="name") from exc
    return Vendor(**dict(row))


@dataclass(frozen=True, slots=True)
class Product:
    id: int
    vendor_id: int
    name: str
    currency: str
    traffic: str
    enabled: bool


_PRODUCT = "p.id, p.vendor_id, p.name, p.currency, p.traffic, p.enabled"


def _product(row: asyncpg.Record) -> Product:
    values = dict(row)
    values["currency"] = values["currency"].strip()
    return Product(**values)


async def create_product(conn: asyncpg.Connection, scope: Scope, vendor_id: int, *, name: str, currency: str,
                         traffic: str) -> Product:
    await get_vendor(conn, scope, vendor_id)
    if traffic not in ("sms", "viber_promotion", "viber_transaction"):
        raise Invalid("unknown traffic type", field="traffic")
    if len(currency) != 3 or not currency.isalpha():
        raise Invalid("currency must be a 3-letter ISO 4217 code", field="currency")
    try:
        async with conn.transaction():
                row = await conn.fetchrow(
                f"""INSERT INTO vendor_products AS p (vendor_id, name, currency, traffic)
                    VALUES ($1, $2, $3, $4) RETURNING {_PRODUCT}""",
                vendor_id, name.strip(), currency.upper(), traffic,
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("this vendor already has a product with this name", field="name") from exc
    return _product(row)


async def list_products(conn: Conn, scope: Scope, vendor_id: int) -> list[Product]:
    await get_vendor(conn, scope, vendor_id)
    rows = await conn.fetch(f"SELECT {_PRODUCT} FROM vendor_products p WHERE p.vendor_id = $1 ORDER BY p.id",
                            vendor_id)
    return [_product(r) for r in rows]


async def _product_of_owner(conn: Conn, scope: Scope, product_id: int) -> Product:
    require_owner(scope)
    row = await conn.fetchrow(f"SELECT {_PRODUCT} FROM vendor_products p WHERE p.id = $1", product_id)
    if row is None:
        raise NotFound("no such product")
    return _product(row)


async def set_product_rates(conn: asyncpg.Connection, scope: Scope, product_id: int, rows: Sequence[RateRow],
                            *, replace: bool = True) -> int:
    """Replace (or upsert into) a product's rates; returns the rows stored."""
    await _product_of_owner(conn, scope, product_id)
    async with conn.transaction():
        if replace:
            await conn.execute("DELETE FROM vendor_rates WHERE product_id = $1", product_id)
        await conn.execute(
            """INSERT INTO vendor_rates (product_id, mcc, mnc, price)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::numeric[])
               ON CONFLICT (product_id, mcc, mnc) DO UPDATE SET price = excluded.price""",
            product_id, [r.mcc for r in rows], [r.mnc for r in rows], [r.price for r in rows],
        )
    return len(rows)


async def import_product_rates_csv(conn: asyncpg.Connection, scope: Scope, product_id: int, text: str, *,
                                   replace: bool = True) -> ImportReport:
    rows, rejected = parse_rates_csv(text)
    await set_product_rates(conn, scope, product_id, rows, replace=replace)
    return ImportReport(len(rows), tuple(rejected))


async def export_product_rates_csv(conn: Conn, scope: Scope, product_id: int) -> str:
    await _product_of_owner(conn, scope, product_id)
    rows = await conn.fetch("SELECT mcc, mnc, price FROM vendor_rates WHERE product_id = $1", product_id)
    return rates_to_csv(RateRow(r["mcc"], r["mnc"], r["price"]) for r in rows)


@dataclass(frozen=True, slots=True)
class VendorOffer:
    vendor_id: int
    product_id: int
    price: Decimal
    currency: str


_OFFERS = """
SELECT DISTINCT ON (p.id) v.id AS vendor_id, p.id AS product_id, r.price, p.currency
FROM vendor_rates r
JOIN vendor_products p ON p.id = r.product_id AND p.enabled AND p.traffic = $1
JOIN vendors v ON v.id = p.vendor_id AND v.enabled
WHERE r.mcc = $2 AND (r.mnc = $3 OR r.mnc = '*')
ORDER BY p.id, (r.mnc = '*')"""


async def offers_for(conn: Conn, traffic: str, mccmnc: str) -> list[VendorOffer]:
    """Enabled vendor products carrying the destination, cheapest first (internal: for routing).

    Each product offers its network rate when it has one, else its country rate.
    """
    mcc, mnc = mccmnc[:3], mccmnc[3:] or "-"
    rows = await conn.fetch(_OFFERS, traffic, mcc, mnc)
    offers = [VendorOffer(r["vendor_id"], r["product_id"], r["price"], r["currency"].strip()) for r in rows]
    return sorted(offers, key=lambda o: (o.price, o.vendor_id, o.product_id))
