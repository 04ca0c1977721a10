"""Imports end to end on a real PostgreSQL: modes, the stop list choices, rejects, refusals, restarts."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import pytest_asyncio

from contacts import contacts, fields, files, groups, imports, stoplist
from contacts.contacts import ContactInput
from contacts.runner import ImportRunner
from tests.contacts.conftest import new_partner
from tests.contacts.files_helpers import write, xls_bytes, xlsx_bytes

HEADER = "Phone,First name,Date of birth,City,Tier\n"


@pytest_asyncio.fixture(loop_scope="session")
async def shop(pool):
    async with pool.acquire() as conn:
        partner_id, user_id = await new_partner(conn, "Shop")
        await fields.create_field(conn, partner_id, name="City", data_type="text")
        await fields.create_field(conn, partner_id, name="Tier", data_type="number")
        target = await groups.create(conn, partner_id, name="Imported")
        old = await groups.create(conn, partner_id, name="Old")
        await contacts.create(conn, partner_id, ContactInput(
            "447700900001", (old.id,), first_name="Kept", fields={"city": "Bath", "tier": 1}), user_id=user_id)
    return {"partner_id": partner_id, "user_id": user_id, "group": target.id, "old": old.id}


async def start(pool, shop, tmp_path, data: bytes, *, mode="add_update", stop_mode="exclude",
                stop_senders=(), group=None, country="GB", name="c.csv") -> int:
    kind = files.sniff(data[:8])
    path = write(tmp_path, f"upload.{kind}", data)
    async with pool.acquire() as conn:
        all_fields = await fields.list_fields(conn, shop["partner_id"])
        draft = await imports.create_draft(
            conn, shop["partner_id"], shop["user_id"], file_name=name, kind=kind, content=data,
            preview=files.preview(path, kind), all_fields=all_fields, country=country)
        await imports.save_mapping(conn, shop["partner_id"], draft.id, header_row=draft.header_row,
                                   mapping=draft.mapping, mode=mode, stop_mode=stop_mode,
                                   stop_senders=list(stop_senders), country=country)
        await imports.queue(conn, shop["partner_id"], draft.id, group or shop["group"])
    return draft.id


async def run(pool, shop, tmp_path, data: bytes, **kwargs) -> imports.Import:
    import_id = await start(pool, shop, tmp_path, data, **kwargs)
    assert await imports.claim(pool) == (import_id, 1)
    return await imports.run_import(pool, import_id)


async def rejected(pool, shop, job) -> dict[int, str]:
    return {r.row_number: r.reason async for r in imports.rejects(pool, shop["partner_id"], job.id)}


async def test_add_and_update_with_every_kind_of_bad_row(pool, shop, tmp_path):
    data = (HEADER
            + "+447700900001,Ada,,Leeds,\n"            # present: name and city updated, tier kept
            + "07700 900002,Grace,1990-02-03,York,2\n"  # local number, GB
            + "not a number,Bad,,,\n"
            + "+447700900003,Alan,31/31/1999,,\n"      # bad date
            + "+447700900004,Edsger,,,many\n"          # bad number
            + ",Nobody,,,\n"                            # no phone
            + "+447700900005,First,,,\n"
            + "447700900005,Second,,,\n").encode()     # the same number again: the later row wins
    job = await run(pool, shop, tmp_path, data)
    assert (job.status, job.added, job.updated, job.skipped, job.rejected) == ("done", 2, 1, 0, 5)
    assert await rejected(pool, shop, job) == {
        4: "bad_phone", 5: "bad_date", 6: "bad_number", 7: "no_phone", 8: "duplicate"}
    kept = await contacts.for_phone(pool, shop["partner_id"], "447700900001")
    assert kept.first_name == "Ada" and kept.fields == {"city": "Leeds", "tier": 1}
    assert sorted(kept.group_ids) == sorted([shop["old"], shop["group"]])
    assert (await contacts.for_phone(pool, shop["partner_id"], "447700900005")).first_name == "Second"
    grace = await contacts.for_phone(pool, shop["partner_id"], "447700900002")
    assert (grace.birth_date.isoformat(), grace.fields) == ("1990-02-03", {"city": "York", "tier": 2})
    assert (await groups.get(pool, shop["partner_id"], shop["group"])).member_count == 3


@pytest.mark.parametrize(("mode", "counts", "present"), [
    ("add_only", (1, 0, 1), {"447700900001": "Kept", "447700900009": "New"}),
    ("update_only", (0, 1, 1), {"447700900001": "Changed", "447700900009": None}),
])
async def test_modes(pool, shop, tmp_path, mode, counts, present):
    data = (HEADER + "+447700900001,Changed,,,\n+447700900009,New,,,\n").encode()
    job = await run(pool, shop, tmp_path, data, mode=mode)
    assert (job.added, job.updated, job.skipped) == counts
    for phone, name in present.items():
        contact = await contacts.for_phone(pool, shop["partner_id"], phone)
        assert (contact.first_name if contact else None) == name


async def test_stop_list_choices(pool, shop, tmp_path):
    await stoplist.block(pool, shop["partner_id"], ["447700900001"], ["Herald"])
    data = (HEADER + "+447700900001,Changed,,,\n+447700900009,New,,,\n").encode()
    job = await run(pool, shop, tmp_path, data, stop_mode="exclude")
    assert (job.added, job.updated, job.skipped) == (1, 0, 1)
    assert (await contacts.for_phone(pool, shop["partner_id"], "447700900001")).first_name == "Kept"

    job = await run(pool, shop, tmp_path, data, stop_mode="unblock", stop_senders=["Herald"])
    assert (job.updated, job.skipped) == (2, 0)
    assert await stoplist.senders_of(pool, shop["partner_id"], "447700900001") == []

    job = await run(pool, shop, tmp_path, data, stop_mode="block", stop_senders=["Promo", "Herald"])
    assert await stoplist.senders_of(pool, shop["partner_id"], "447700900009") == ["Herald", "Promo"]


async def test_import_into_the_stop_list_group_blocks_everything(pool, shop, tmp_path):
    stop = await groups.stop_list_group(pool, shop["partner_id"])
    job = await run(pool, shop, tmp_path, (HEADER + "+447700900077,Z,,,\n").encode(), group=stop.id)
    assert job.added == 1
    assert await stoplist.senders_of(pool, shop["partner_id"], "447700900077") == ["*"]


async def test_required_field_missing_rejects_new_contacts_only(pool, shop, tmp_path):
    async with pool.acquire() as conn:
        await fields.update_field(conn, shop["partner_id"], "first_name", name="First name", required=True)
    data = (HEADER + "+447700900001,,,Hull,\n+447700900010,,,Hull,\n").encode()
    job = await run(pool, shop, tmp_path, data)
    assert (job.added, job.updated, job.rejected) == (0, 1, 1)
    assert await rejected(pool, shop, job) == {3: "missing_required"}


async def test_spreadsheets(pool, shop, tmp_path):
    data = xlsx_bytes([["Phone", "First name", "Date of birth", "City", "Tier"],
                       [447700900021, "Ada", datetime(1990, 1, 2), "Leeds", 3],
                       ["07700900022", "Grace", None, None, "x"]])
    job = await run(pool, shop, tmp_path, data, name="c.xlsx")
    assert (job.added, job.rejected) == (1, 1)
    ada = await contacts.for_phone(pool, shop["partner_id"], "447700900021")
    assert (ada.birth_date.isoformat(), ada.fields) == ("1990-01-02", {"city": "Leeds", "tier": 3})
    data = xls_bytes([["Phone", "First name", "Date of birth"], ["+447700900031", "Old", datetime(1970, 5, 6)]])
    job = await run(pool, shop, tmp_path, data, name="c.xls")
    assert job.added == 1
    assert (await contacts.for_phone(pool, shop["partner_id"], "447700900031")).birth_date.isoformat() == "1970-05-06"


async def test_a_file_malformed_half_way_fails_and_changes_nothing(pool, shop, tmp_path):
    rows = "".join(f"+4477009{n:05d},N{n},,,\n" for n in range(100, 3000))
    data = (HEADER + rows + "+447700999999,x,,,,extra,cells\n").encode()
    job = await run(pool, shop, tmp_path, data)
    assert job.status == "failed" and "regular table" in job.error and "line 2902" in job.error
    assert await contacts.for_phone(pool, shop["partner_id"], "447700900100") is None
    assert await contacts.count(pool, shop["partner_id"], contacts.ContactFilter()) == 1


async def test_tenants_imports_stay_their_own(pool, shop, tmp_path):
    from config.errors import NotFound

    data = (HEADER + "+447700900041,A,,,\n").encode()
    async with pool.acquire() as conn:
        other, _ = await new_partner(conn, "Other")
        theirs = await groups.create(conn, other, name="Theirs")
        draft = await imports.create_draft(
            conn, shop["partner_id"], shop["user_id"], file_name="c.csv", kind="csv", content=data,
            preview=[["Phone"], ["+447700900041"]], all_fields=await fields.list_fields(conn, shop["partner_id"]),
            country=None)
        with pytest.raises(NotFound):
            await imports.get(conn, other, draft.id)
        with pytest.raises(NotFound):
            await imports.save_mapping(conn, other, draft.id, header_row=True, mapping=["phone"],
                                       mode="add_update", stop_mode="exclude", stop_senders=[])
        with pytest.raises(NotFound):
            await imports.queue(conn, shop["partner_id"], draft.id, theirs.id)
        with pytest.raises(NotFound):
            [c async for c in imports.file_chunks(conn, other, draft.id)]


async def test_an_import_whose_worker_died_is_taken_again_and_applied_once(pool, shop, tmp_path, db_url):
    data = (HEADER + "".join(f"+4477009{n:05d},N{n},,,\n" for n in range(200, 1200))).encode()
    import_id = await start(pool, shop, tmp_path, data)
    # a first runner takes it and dies before the merge committed: the lease runs out
    assert await imports.claim(pool) == (import_id, 1)
    await pool.execute("UPDATE contact_imports SET lease_until = now() - interval '1 second' WHERE id = $1",
                       import_id)
    runner = ImportRunner(pool, db_url, poll=0.1)
    await runner.start()
    try:
        for _ in range(300):
            job = await imports.get(pool, shop["partner_id"], import_id)
            if job.finished:
                break
            await asyncio.sleep(0.1)
    finally:
        await runner.stop()
    assert (job.status, job.attempts, job.added) == ("done", 2, 1000)
    assert await contacts.count(pool, shop["partner_id"], contacts.ContactFilter()) == 1001


async def test_a_clean_stop_hands_a_running_import_back(pool, shop, tmp_path, db_url):
    data = (HEADER + "".join(f"+4477009{n:05d},N{n},,,\n" for n in range(200, 60200))).encode()
    import_id = await start(pool, shop, tmp_path, data)
    runner = ImportRunner(pool, db_url, poll=0.1)
    await runner.start()
    for _ in range(100):
        if (await imports.get(pool, shop["partner_id"], import_id)).status == "running":
            break
        await asyncio.sleep(0.05)
    await runner.stop()
    job = await imports.get(pool, shop["partner_id"], import_id)
    assert job.status in ("queued", "done")  # queued again, unless it was quicker than the stop
    if job.status == "queued":
        assert await contacts.count(pool, shop["partner_id"], contacts.ContactFilter()) == 1


async def test_abandoned_drafts_go_after_a_day(pool, shop):
    async with pool.acquire() as conn:
        draft = await imports.create_draft(
            conn, shop["partner_id"], shop["user_id"], file_name="c.csv", kind="csv", content=b"Phone\n1\n",
            preview=[["Phone"], ["1"]], all_fields=await fields.list_fields(conn, shop["partner_id"]), country=None)
        assert await imports.delete_drafts(conn) == 0
        await conn.execute("UPDATE contact_imports SET created_at = now() - interval '25 hours' WHERE id = $1",
                           draft.id)
        assert await imports.delete_drafts(conn) == 1
        assert await conn.fetchval("SELECT count(*) FROM contact_import_chunks WHERE import_id = $1", draft.id) == 0
