"""The reference book: longest-prefix lookup, the default world table, CSV import with bad rows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.tenancy import load_scope
from billing import refbook
from billing.mcc import COUNTRIES_BY_MCC, MCCS_BY_COUNTRY, mccs_for_countries
from billing.refbook import Network, PrefixTable, parse_csv, split_mccmnc
from config.errors import Forbidden, Invalid
from tests.billing.conftest import make_partner


def test_longest_prefix_wins():
    table = PrefixTable([Network("7", "250", None, "RU"), Network("7916", "250", "01", "RU", "MTS"),
                         Network("77", "401", None, "KZ"), Network("79161", "250", "99", "RU", "X")])
    assert table.lookup("79161234567").mnc == "99"
    assert table.lookup("79171234567").prefix == "7"
    assert table.lookup("7916").mnc == "01"
    assert table.lookup("77011234567").country == "KZ"
    assert table.lookup("81234") is None
    assert table.lookup("") is None


@given(prefixes=st.sets(st.text("0123456789", min_size=1, max_size=6), max_size=40),
       number=st.text("0123456789", min_size=0, max_size=12))
def test_lookup_matches_a_naive_scan(prefixes, number):
    table = PrefixTable(Network(p, "250", None, "RU") for p in prefixes)
    matches = [p for p in prefixes if number.startswith(p)]
    expected = max(matches, key=len) if matches else None
    found = table.lookup(number)
    assert (found.prefix if found else None) == expected


def test_mccmnc_split_and_join():
    assert split_mccmnc("25001") == ("250", "01")
    assert split_mccmnc("310150") == ("310", "150")
    assert split_mccmnc("250") == ("250", None)
    assert Network("7", "250", "01", "RU").mccmnc == "25001"
    assert Network("7", "250", None, "RU").mccmnc == "250"
    with pytest.raises(Invalid):
        split_mccmnc("2500")


def test_mcc_table_covers_every_country_of_phonenumbers():
    import phonenumbers

    regions = {r for rs in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.values() for r in rs} - {"001"}
    assert regions <= set(MCCS_BY_COUNTRY)
    assert COUNTRIES_BY_MCC["250"] == ("RU",)
    assert mccs_for_countries(["us", "CA"]) == ["302", "310", "311", "312", "313", "314", "315", "316"]


def test_default_world_table():
    table = PrefixTable(refbook.default_entries())
    assert len(table) > 20000
    cases = {
        "4915123456789": ("262", "DE", "T-Mobile"),
        "12042345678": ("302", "CA", ""),          # Canada found among +1 area codes
        "12125550123": ("310", "US", ""),
        "18765550123": ("338", "JM", ""),
        "77012345678": ("401", "KZ", None),         # Kazakhstan shares +7 with Russia
        "79161234567": ("250", "RU", None),
        "447700900123": ("234", "GB", None),
    }
    for number, (mcc, country, network) in cases.items():
        entry = table.lookup(number)
        assert (entry.mcc, entry.country) == (mcc, country), number
        assert entry.mnc is None                    # no packaged source gives MNCs
        if network is not None:
            assert entry.network == network


CSV = """prefix,mcc,mnc,country,network
7916,250,01,RU,MTS
4915,262,01,DE,Telekom
bad,250,01,RU,X
7917,25,01,RU,X
7918,250,1,RU,X
7919,250,02,XYZ,X
7920,262,02,RU,X
7916,250,02,RU,Again
49,262,,de,
7921,250,02,RU
"""


def test_csv_parse_reports_each_bad_row_with_line_and_reason():
    good, rejected = parse_csv(CSV)
    assert [(e.prefix, e.mnc, e.country) for e in good] == [
        ("7916", "01", "RU"), ("4915", "01", "DE"), ("49", None, "DE")]
    assert [(r.line, r.reason) for r in rejected] == [
        (4, "prefix must be 1 to 15 digits"),
        (5, "MCC must be 3 digits"),
        (6, "MNC must be 2 or 3 digits, or empty when unknown"),
        (7, "country must be a 2-letter ISO 3166 code"),
        (8, "MCC 262 belongs to DE, not RU"),
        (9, "prefix 7916 repeats line 2"),
        (11, "expected 5 columns, found 4"),
    ]
    with pytest.raises(Invalid):
        parse_csv("prefix;mcc\n1;2\n")


async def test_import_keeps_good_rows_and_export_round_trips(conn, owner):
    await conn.execute("DELETE FROM number_prefixes")
    before = await refbook.revision(conn)
    report = await refbook.import_csv(conn, owner, CSV)
    assert report.accepted == 3 and len(report.rejected) == 7
    assert await refbook.revision(conn) == before + 1
    revision, table = await refbook.load_prefix_table(conn)
    assert revision == before + 1
    assert table.lookup("79161112233").network == "MTS"
    assert table.lookup("4930123").mnc is None
    exported = await refbook.export_csv(conn, owner)
    assert exported.splitlines()[0] == "prefix,mcc,mnc,country,network"
    again, bad = parse_csv(exported)
    assert not bad and {e.prefix for e in again} == {"7916", "4915", "49"}
    # replace drops what the new file does not list
    await refbook.import_csv(conn, owner, "prefix,mcc,mnc,country,network\n44,234,,GB,\n", replace=True)
    assert [e.prefix for e in await refbook.all_entries(conn)] == ["44"]


async def test_reference_book_reloads_when_the_revision_moves(conn, owner):
    book = refbook.ReferenceBook()
    assert await book.refresh(conn)
    assert not await book.refresh(conn)
    await refbook.import_csv(conn, owner, "prefix,mcc,mnc,country,network\n99912,250,20,RU,Test\n")
    assert await book.refresh(conn)
    assert book.lookup("999123").mccmnc == "25020"


async def test_only_the_owner_imports(conn, owner):
    reseller = await make_partner(conn, owner, owner.partner_id, "reseller", "R")
    with pytest.raises(Forbidden):
        await refbook.import_csv(conn, await load_scope(conn, reseller.id), CSV)


async def test_seed_default_fills_an_empty_book_once(conn):
    await conn.execute("DELETE FROM number_prefixes")
    added = await refbook.seed_default(conn)
    assert added > 20000
    assert await refbook.seed_default(conn) == 0
    _, table = await refbook.load_prefix_table(conn)
    assert table.lookup("4915123456789").country == "DE"
