"""Vendors, their products and rates, and the cheapest-first offers routing reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tenancy import load_scope
from billing import vendors
from billing.rates import RateRow
from billing.vendors import NewVendor
from config.errors import Conflict, Forbidden, Invalid
from tests.billing.conftest import make_partner

D = Decimal


async def test_vendor_settings_are_validated(conn, owner):
    smpp = await vendors.create_vendor(conn, owner, NewVendor(
        "Carrier A", smpp_host="127.0.0.1", smpp_port=2775, system_id="herald", password="secret",
        tps=50, window_size=20, bind_type="transmitter"))
    assert (smpp.protocol, smpp.tps, smpp.window_size, smpp.bind_type) == ("smpp", 50, 20, "transmitter")
    assert "secret" not in repr(smpp)
    viber = await vendors.create_vendor(conn, owner, NewVendor(
        "Viber P", channel="viber", protocol="http", http_base_url="http://127.0.0.1:9000/api",
        http_token="tok"))
    assert viber.http_base_url.endswith("/api")
    bad = [
        NewVendor("x1", smpp_host="h", smpp_port=70000, system_id="s"),
        NewVendor("x2", smpp_port=2775, system_id="s"),
        NewVendor("x3", smpp_host="h", smpp_port=1, system_id="s" * 16),
        NewVendor("x4", smpp_host="h", smpp_port=1, system_id="s", password="123456789"),
        NewVendor("x5", protocol="http", http_base_url="ftp://x"),
        NewVendor("x6", smpp_host="h", smpp_port=1, system_id="s", tps=0),
    ]
    for new in bad:
        with pytest.raises(Invalid):
            await vendors.create_vendor(conn, owner, new)
    with pytest.raises(Conflict):
        await vendors.create_vendor(conn, owner, NewVendor("Carrier A", smpp_host="h", smpp_port=1, system_id="s"))
    updated = await vendors.update_vendor(conn, owner, smpp.id, enabled=False, tps=5)
    assert (updated.enabled, updated.tps) == (False, 5)
    assert [v.id for v in await vendors.enabled_vendors(conn)] == [viber.id]
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    with pytest.raises(Forbidden):
        await vendors.list_vendors(conn, await load_scope(conn, reseller.id))


async def test_offers_are_cheapest_first_with_country_fallback(conn, owner):
    a = await vendors.create_vendor(conn, owner, NewVendor("A", smpp_host="h", smpp_port=1, system_id="a"))
    b = await vendors.create_vendor(conn, owner, NewVendor("B", smpp_host="h", smpp_port=1, system_id="b"))
    pa = await vendors.create_product(conn, owner, a.id, name="A std", currency="EUR", traffic="sms")
    pb = await vendors.create_product(conn, owner, b.id, name="B std", currency="EUR", traffic="sms")
    await vendors.set_product_rates(conn, owner, pa.id, [RateRow("250", "01", D("0.020")),
                                                         RateRow("250", "*", D("0.030"))])
    report = await vendors.import_product_rates_csv(conn, owner, pb.id,
                                                    "mcc,mnc,price\n250,*,0.025\n250,01,x\n")
    assert report.accepted == 1 and report.rejected[0].line == 3
    offers = await vendors.offers_for(conn, "sms", "25001")
    assert [(o.vendor_id, o.price) for o in offers] == [(a.id, D("0.02")), (b.id, D("0.025"))]
    offers = await vendors.offers_for(conn, "sms", "25002")
    assert [(o.vendor_id, o.price) for o in offers] == [(b.id, D("0.025")), (a.id, D("0.03"))]
    assert [o.vendor_id for o in await vendors.offers_for(conn, "sms", "250")] == [b.id, a.id]
    assert await vendors.offers_for(conn, "viber_promotion", "25001") == []
    await vendors.update_vendor(conn, owner, a.id, enabled=False)
    assert [o.vendor_id for o in await vendors.offers_for(conn, "sms", "25001")] == [b.id]
    csv = await vendors.export_product_rates_csv(conn, owner, pa.id)
    assert csv.splitlines()[1:] == ["250,*,0.030000,RU", "250,01,0.020000,RU"]
