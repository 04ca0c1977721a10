"""The import wizard over HTTP, with the application's own import runner doing the work."""

from __future__ import annotations

import asyncio
import io

import pytest_asyncio
from aiohttp import FormData
from openpyxl import load_workbook

from contacts import contacts, imports
from tests.contacts.files_helpers import zip_bomb
from tests.portal.conftest import page, sign_in, token_for
from tests.portal.contacts_world import make_world

CSV = (b"Phone,First name,City\n"
       b"+447700900201,Ada,Leeds\n"
       b"07700900202,Grace,York\n"
       b"=HYPERLINK(\"http://evil.test\"),Mallory,\n"
       b"+447700900123,Updated,Bath\n")


@pytest_asyncio.fixture(loop_scope="session")
async def world(client, db):
    made = await make_world(db)
    await db.execute("UPDATE users SET country = 'GB' WHERE id = $1", made.user_id)
    await sign_in(client, made.email)
    return made


async def upload(client, data: bytes, name: str = "contacts.csv", path: str = "/contacts/import", **extra):
    token = await token_for(client, "/contacts/import")
    form = FormData()
    form.add_field("_csrf", token)
    for key, value in extra.items():
        form.add_field(key, value)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return await client.post(path, data=form, allow_redirects=False)


async def finished(db, world, import_id: int) -> imports.Import:
    for _ in range(600):
        job = await imports.get(db, world.partner_id, import_id)
        if job.finished:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"import {import_id} did not finish: {job}")


async def test_wizard_upload_mapping_group_result(client, db, world):
    response = await upload(client, CSV)
    assert response.status == 303, await response.text()
    mapping_url = response.headers["Location"]
    import_id = int(mapping_url.split("/")[3])
    status, html = await page(client, mapping_url)
    assert status == 200 and "Ada" in html and 'value="phone" selected' in html
    token = await token_for(client, mapping_url)
    response = await client.post(mapping_url, data=[
        ("_csrf", token), ("header_row", "1"), ("map", "phone"), ("map", "first_name"), ("map", world.field_key),
        ("mode", "add_update"), ("stop_mode", "exclude"), ("country", "GB")], allow_redirects=False)
    assert response.status == 303
    group_url = response.headers["Location"]
    status, html = await page(client, group_url)
    assert status == 200
    response = await client.post(group_url, data=[("_csrf", token), ("group", ""), ("new_group", "Spring fair")],
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/contacts/imports/{import_id}"
    job = await finished(db, world, import_id)
    # the number already present was skipped: it is on the stop list (the world blocked it)
    assert (job.status, job.added, job.updated, job.skipped, job.rejected) == ("done", 2, 0, 1, 1)
    grace = await contacts.for_phone(db, world.partner_id, "447700900202")
    assert grace.fields == {"city": "York"}
    status, html = await page(client, f"/contacts/imports/{import_id}")
    assert status == 200 and "Not a valid phone number" in html and "Spring fair" in html
    progress = await (await client.get(f"/contacts/imports/{import_id}/progress")).json()
    assert progress["status"] == "done" and progress["progress"] == 100
    response = await client.get(f"/contacts/imports/{import_id}/rejects?format=xlsx")
    sheet = load_workbook(io.BytesIO(await response.read())).active
    rows = [[c.value for c in r] for r in sheet.iter_rows()]
    assert rows[1][:3] == ["4", "Not a valid phone number", "'=HYPERLINK(\"http://evil.test\")"]
    assert rows[1][3].startswith("'=HYPERLINK")  # the raw cell, neutralised
    response = await client.get(f"/contacts/imports/{import_id}/file")
    assert await response.read() == CSV
    # the finished import is no draft any more: the wizard's steps send to its page
    status, _ = await page(client, mapping_url)
    assert status == 303


async def test_replace_the_file_and_the_steps(client, world):
    response = await upload(client, b"Phone\n+447700900301\n")
    mapping_url = response.headers["Location"]
    import_id = int(mapping_url.split("/")[3])
    response = await upload(client, b"Tel;Name\n+447700900302;Zoe\n", name="other.csv",
                            path=f"/contacts/import/{import_id}/file")
    assert response.status == 303
    _status, html = await page(client, mapping_url)
    assert "other.csv" in html and "Zoe" in html
    token = await token_for(client, mapping_url)
    response = await client.post(mapping_url, data=[
        ("_csrf", token), ("header_row", "1"), ("map", ""), ("map", "first_name"), ("mode", "add_update"),
        ("stop_mode", "exclude")], allow_redirects=False)
    assert response.status == 400
    assert "Choose the column that holds the phone numbers." in await response.text()
    response = await client.post(mapping_url, data=[
        ("_csrf", token), ("map", "phone"), ("map", "phone"), ("mode", "add_update"), ("stop_mode", "exclude")],
        allow_redirects=False)
    assert response.status == 400 and "Each field can take one column only." in await response.text()
    response = await client.post(mapping_url, data=[
        ("_csrf", token), ("map", "phone"), ("mode", "add_update"), ("stop_mode", "block")], allow_redirects=False)
    assert response.status == 400 and "Choose at least one sender ID" in await response.text()


async def test_bad_files_are_refused_at_upload_and_nothing_is_kept(client, db, world):
    before = await db.fetchval("SELECT count(*) FROM contact_imports")
    cases = [
        (b"x" * (10 * 1024 * 1024 + 1), "big.csv", "larger than 10 MB"),
        ("Phone,Name\n+447700900123,Ада\n".encode("cp1251"), "ru.csv", "not UTF-8"),
        (b"Phone,Name\n+447700900123,A\n+447700900124,B,C\n", "ragged.csv", "line 3"),
        (zip_bomb(), "bomb.xlsx", "unpacks to far more"),
        (b"PK\x03\x04garbage", "broken.xlsx", "not a readable XLSX"),
        (b"", "empty.csv", "The file is empty."),
        (b"Phone\n\x00\n", "nul.csv", "NUL"),
    ]
    for data, name, message in cases:
        response = await upload(client, data, name=name)
        text = await response.text()
        assert response.status == 400, name
        assert message in text, (name, text[:3000])
    assert await db.fetchval("SELECT count(*) FROM contact_imports") == before


async def test_an_upload_past_the_request_limit_gets_a_clear_page(client, world):
    response = await upload(client, b"x" * (13 * 1024 * 1024))
    assert response.status == 413
    assert "at most 10 MB" in await response.text()


async def test_import_pages_in_four_languages(client, db, world):
    words = {"en": "Upload your file", "es": "Suba su archivo", "ru": "Загрузите файл", "tr": "Dosyanızı yükleyin"}
    for language, word in words.items():
        await db.execute("UPDATE users SET language = $2 WHERE id = $1", world.user_id, language)
        for path in ("/contacts/import", "/contacts", "/contacts/groups", "/contacts/stop-list",
                     "/contacts/imports", "/contacts/settings", f"/contacts/imports/{world.import_id}"):
            status, html = await page(client, path)
            assert status == 200, (language, path)
        status, html = await page(client, "/contacts/import")
        assert word in html, language
    status, html = await page(client, "/contacts/stop-list")
    assert "Engel listesi" in html
