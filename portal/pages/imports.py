"""Import Contacts (guide §6.5) and Import History (§6.3).

The wizard: upload (``/contacts/import``) → mapping (``/contacts/import/{id}/mapping``)
→ group (``/contacts/import/{id}/group``), each step a link of the steps bar
while the import is a draft; the last step queues it and the page of the
import (``/contacts/imports/{id}``) follows its progress
(``/contacts/imports/{id}/progress``, JSON, polled by ``static/app.js``) and
shows its result. The import runs in the background (:mod:`contacts.runner`,
started with the application by :func:`install`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from config.errors import HeraldError, Invalid, NotFound
from contacts import fields, files, groups, imports, stoplist
from contacts.runner import ImportRunner
from gateway.base.app import DB, SETTINGS
from portal import i18n, tables
from portal.auth import login_required, signed_in
from portal.i18n import N_
from portal.pages import contacts_common as common
from portal.render import render

routes = web.RouteTableDef()
RUNNER = web.AppKey("contact_import_runner", ImportRunner)
STEPS = (("file", N_("Upload your file")), ("mapping", N_("Map the columns")), ("group", N_("Choose a group")))
TABLE = tables.TableSpec(
    id="contact_imports", label=N_("Import History"),
    columns=(
        tables.Column("file", N_("File"), hideable=False),
        tables.Column("user", N_("User")),
        tables.Column("date", N_("Date")),
        tables.Column("status", N_("Status")),
        tables.Column("added", N_("Added"), numeric=True),
        tables.Column("updated", N_("Updated"), numeric=True),
        tables.Column("skipped", N_("Skipped"), numeric=True),
        tables.Column("rejected", N_("Rejected"), numeric=True),
    ),
    filters=(
        tables.Filter("q", N_("Search by file name")),
        tables.Filter("status", N_("Status"), "select",
                      tuple((k, v) for k, v in imports.STATUS_LABELS.items() if k != "draft")),
    ),
    bulk_actions=(tables.BulkAction("export", N_("Export"), "/contacts/imports/bulk/export"),),
    row_actions=True, sort_key=lambda i: (i.id,), row_id=lambda i: i.id,
)


def install(app: web.Application) -> None:
    """Run an import runner for the application's lifetime (any process may take an import)."""

    async def runner_ctx(app: web.Application) -> AsyncIterator[None]:
        runner = ImportRunner(app[DB], app[SETTINGS].database_url)
        await runner.start()
        app[RUNNER] = runner
        try:
            yield
        finally:
            await runner.stop()

    app.cleanup_ctx.append(runner_ctx)


# Step 1: the file

async def _read_upload(request: web.Request) -> tuple[str, bytes | None, str]:
    """(file name, its bytes, error message) of the posted ``file``; bytes None on error."""
    data = await request.post()
    upload = data.get("file")
    if not hasattr(upload, "file"):
        return "", None, i18n.gettext("Choose a CSV, XLS or XLSX file.")
    name = str(getattr(upload, "filename", "") or "contacts")
    content = await asyncio.to_thread(upload.file.read, files.MAX_BYTES + 1)
    if len(content) > files.MAX_BYTES:
        return name, None, i18n.gettext(files.MESSAGES["too_large"])
    if not content.strip():
        return name, None, i18n.gettext(files.MESSAGES["empty"])
    return name, content, ""


def _check_file(content: bytes) -> tuple[str, list[list[str]]]:
    """(kind, preview) of an uploaded file, in a thread; FileRefused when unusable."""
    kind = files.sniff(content[:8])
    folder = Path(tempfile.mkdtemp(prefix="herald-upload-"))
    try:
        path = folder / f"upload.{kind}"
        path.write_bytes(content)
        if kind == "csv":
            files.check_csv(path)
        elif kind == "xlsx":
            files.check_zip(path)
        rows = files.preview(path, kind)
        if not rows:
            raise files.refuse("empty")
        return kind, rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _refused_text(exc: files.FileRefused) -> str:
    text = i18n.gettext(exc.message)
    if exc.line:
        text += " " + i18n.gettext("(line %(line)s)", line=exc.line)
    return text


def _upload_page(request: web.Request, *, job: imports.Import | None, error: str = "", to: str = "",
                 status: int = 200) -> web.Response:
    return render(request, "contacts/import_upload.html", {
        "job": job, "error": error, "to": to, "steps": STEPS, "step": "file",
        "max_mb": files.MAX_BYTES // (1024 * 1024), "tabs": common.tabs(), "tab": "imports",
    }, status=status, active="contacts", title=i18n.gettext("Import Contacts"))


@routes.get("/contacts/import")
@login_required
async def upload_page(request: web.Request) -> web.Response:
    to = "stop-list" if request.query.get("to") == "stop-list" else ""
    return _upload_page(request, job=None, to=to)


async def _new_file(request: web.Request) -> tuple[str, str, bytes, list[list[str]]] | str:
    name, content, error = await _read_upload(request)
    if content is None:
        return error
    try:
        kind, preview = await asyncio.to_thread(_check_file, content)
    except files.FileRefused as exc:
        return _refused_text(exc)
    return name, kind, content, preview


@routes.post("/contacts/import")
@login_required
async def upload(request: web.Request) -> web.Response:
    user = signed_in(request)
    to = "stop-list" if (await request.post()).get("to") == "stop-list" else ""
    found = await _new_file(request)
    if isinstance(found, str):
        return _upload_page(request, job=None, error=found, to=to, status=400)
    name, kind, content, preview = found
    async with common.db(request).acquire() as conn:
        all_fields = await fields.list_fields(conn, user.partner_id)
        job = await imports.create_draft(conn, user.partner_id, user.id, file_name=name, kind=kind,
                                         content=content, preview=preview, all_fields=all_fields,
                                         country=await common.user_country(request))
        if to:
            stop = await groups.stop_list_group(conn, user.partner_id)
            await imports.preset(conn, user.partner_id, job.id, stop_mode="block",
                                 stop_senders=[stoplist.ALL], group_id=stop.id)
    raise web.HTTPSeeOther(f"/contacts/import/{job.id}/mapping")


async def _draft(request: web.Request) -> imports.Import:
    job = await imports.get(common.db(request), signed_in(request).partner_id, common.int_param(request, "id"))
    if job.status != "draft":
        raise web.HTTPSeeOther(f"/contacts/imports/{job.id}")
    return job


@routes.get(r"/contacts/import/{id:\d+}/file")
@login_required
async def replace_page(request: web.Request) -> web.Response:
    return _upload_page(request, job=await _draft(request))


@routes.post(r"/contacts/import/{id:\d+}/file")
@login_required
async def replace(request: web.Request) -> web.Response:
    job = await _draft(request)
    found = await _new_file(request)
    if isinstance(found, str):
        return _upload_page(request, job=job, error=found, status=400)
    name, kind, content, preview = found
    async with common.db(request).acquire() as conn:
        all_fields = await fields.list_fields(conn, job.partner_id)
        await imports.replace_file(conn, job.partner_id, job.id, file_name=name, kind=kind, content=content,
                                   preview=preview, all_fields=all_fields)
    raise web.HTTPSeeOther(f"/contacts/import/{job.id}/mapping")


# Step 2: mapping

async def _mapping_page(request: web.Request, job: imports.Import, *, error: str = "",
                        status: int = 200) -> web.Response:
    all_fields = await fields.list_fields(common.db(request), job.partner_id)
    return render(request, "contacts/import_mapping.html", {
        "job": job, "error": error, "steps": STEPS, "step": "mapping",
        "choices": imports.importable(all_fields), "modes": imports.MODE_LABELS,
        "stop_modes": imports.STOP_LABELS, "senders": await common.sender_choices(request, job.stop_senders),
        "countries": common.country_choices(), "tabs": common.tabs(), "tab": "imports",
    }, status=status, active="contacts", title=i18n.gettext("Import Contacts"))


@routes.get(r"/contacts/import/{id:\d+}/mapping")
@login_required
async def mapping_page(request: web.Request) -> web.Response:
    return await _mapping_page(request, await _draft(request))


@routes.post(r"/contacts/import/{id:\d+}/mapping")
@login_required
async def save_mapping(request: web.Request) -> web.Response:
    job = await _draft(request)
    data = await request.post()
    mapping = [str(v) or None for v in data.getall("map", [])][: job.columns]
    country = common.clean_country(data.get("country"))
    try:
        async with common.db(request).acquire() as conn:
            job = await imports.save_mapping(
                conn, job.partner_id, job.id, header_row=data.get("header_row") is not None,
                mapping=mapping, mode=str(data.get("mode", "")), stop_mode=str(data.get("stop_mode", "")),
                stop_senders=[str(s) for s in data.getall("stop_senders", [])], country=country)
    except HeraldError as exc:
        if exc.http_status == 404:
            raise
        return await _mapping_page(request, job, error=i18n.gettext(exc.message), status=400)
    await common.remember_country(request, country)
    raise web.HTTPSeeOther(f"/contacts/import/{job.id}/group")


# Step 3: the group, and off it goes

async def _group_page(request: web.Request, job: imports.Import, *, error: str = "", new_name: str = "",
                      status: int = 200) -> web.Response:
    return render(request, "contacts/import_group.html", {
        "job": job, "error": error, "new_name": new_name, "steps": STEPS, "step": "group",
        "groups": await groups.all_groups(common.db(request), job.partner_id),
        "tabs": common.tabs(), "tab": "imports",
    }, status=status, active="contacts", title=i18n.gettext("Import Contacts"))


@routes.get(r"/contacts/import/{id:\d+}/group")
@login_required
async def group_page(request: web.Request) -> web.Response:
    return await _group_page(request, await _draft(request))


@routes.post(r"/contacts/import/{id:\d+}/group")
@login_required
async def start(request: web.Request) -> web.Response:
    job = await _draft(request)
    user = signed_in(request)
    data = await request.post()
    new_name = str(data.get("new_group", "")).strip()[:200]
    try:
        async with common.db(request).acquire() as conn:
            if new_name:
                group_id = (await groups.create(conn, user.partner_id, name=new_name, user_id=user.id)).id
            else:
                chosen = common.ids_of([data.get("group", "")])
                if not chosen:
                    raise Invalid(N_("Choose a group."))
                group_id = chosen[0]
            try:
                job = await imports.queue(conn, user.partner_id, job.id, group_id)
            except NotFound:
                raise Invalid(N_("Choose a group.")) from None
    except HeraldError as exc:
        return await _group_page(request, job, error=i18n.gettext(exc.message), new_name=new_name, status=400)
    runner = request.app.get(RUNNER)
    if runner is not None:
        runner.poke()
    raise web.HTTPSeeOther(f"/contacts/imports/{job.id}")


# Import History and one import

@routes.get("/contacts/imports")
@login_required
async def history(request: web.Request) -> web.Response:
    user = signed_in(request)

    async def fetch(*, filters, after, before, limit):
        return await imports.list_page(common.db(request), user.partner_id, status=filters["status"],
                                       search=filters["q"], after=after, before=before, limit=limit)

    view = await tables.load(request, TABLE, fetch, prefs=tables.table_prefs(user.ui_prefs, TABLE.id))
    return render(request, "contacts/imports.html", {
        "view": view, "users": await _users(request), "statuses": imports.STATUS_LABELS,
        "tabs": common.tabs(), "tab": "imports",
    }, active="contacts", title=i18n.gettext("Import History"))


async def _users(request: web.Request) -> dict[int, str]:
    rows = await common.db(request).fetch(
        """SELECT id, coalesce(nullif(trim(first_name || ' ' || last_name), ''), email) AS name
           FROM users WHERE partner_id = $1""", signed_in(request).partner_id)
    return {r["id"]: r["name"] for r in rows}


def reason_text(reject: imports.Reject) -> tuple[str, str]:
    """A rejected row's reason and detail in the current language."""
    reason = i18n.gettext(imports.REASONS.get(reject.reason) or files.MESSAGES.get(reject.reason, reject.reason))
    detail = reject.detail
    if reject.reason == "duplicate" and detail.isdigit():
        detail = i18n.gettext("row %(row)s", row=detail)
    return reason, detail


async def _job(request: web.Request) -> imports.Import:
    return await imports.get(common.db(request), signed_in(request).partner_id, common.int_param(request, "id"))


@routes.get(r"/contacts/imports/{id:\d+}")
@login_required
async def result(request: web.Request) -> web.Response:
    job = await _job(request)
    if job.status == "draft":
        raise web.HTTPSeeOther(f"/contacts/import/{job.id}/mapping")
    shown = []
    if job.status == "done" and job.rejected:
        async for reject in imports.rejects(common.db(request), job.partner_id, job.id, batch=50):
            shown.append((reject, *reason_text(reject)))
            if len(shown) >= 50:
                break
    group = None
    if job.group_id:
        try:
            group = await groups.get(common.db(request), job.partner_id, job.group_id)
        except NotFound:
            group = None
    return render(request, "contacts/import_result.html", {
        "job": job, "rejects": shown, "group": group, "statuses": imports.STATUS_LABELS,
        "modes": imports.MODE_LABELS, "tabs": common.tabs(), "tab": "imports",
    }, active="contacts", title=i18n.gettext("Import of %(file)s", file=job.file_name))


@routes.get(r"/contacts/imports/{id:\d+}/progress")
@login_required
async def progress(request: web.Request) -> web.Response:
    job = await _job(request)
    return web.json_response({
        "status": job.status, "status_text": i18n.gettext(imports.STATUS_LABELS[job.status]),
        "progress": job.progress, "rows": job.rows_done, "added": job.added, "updated": job.updated,
        "skipped": job.skipped, "rejected": job.rejected, "finished": job.finished,
        "error": i18n.gettext(job.error) if job.error else "",
    }, headers={"Cache-Control": "no-store"})


@routes.get(r"/contacts/imports/{id:\d+}/file")
@login_required
async def original(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    types = {"csv": "text/csv", "xls": "application/vnd.ms-excel", "xlsx": common.XLSX_TYPE}
    name = job.file_name if "." in job.file_name else f"{job.file_name}.{job.file_kind}"
    return await common.stream_download(request, name, types[job.file_kind],
                                        imports.file_chunks(common.db(request), job.partner_id, job.id))


@routes.get(r"/contacts/imports/{id:\d+}/rejects")
@login_required
async def rejected_rows(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    titles = job.preview[0] if job.header_row and job.preview else []
    header = [i18n.gettext("Row"), i18n.gettext("Reason"), i18n.gettext("Detail")] + [
        titles[i] if i < len(titles) else i18n.gettext("Column %(n)s", n=i + 1) for i in range(job.columns)]

    async def rows():
        async for reject in imports.rejects(common.db(request), job.partner_id, job.id):
            reason, detail = reason_text(reject)
            yield [reject.row_number, reason, detail, *reject.raw]

    return await common.table_download(request, common.fmt_of(request.query.get("format")),
                                       f"rejected-rows-{job.id}", header, rows())


@routes.post("/contacts/imports/bulk/export")
@login_required
async def bulk_export(request: web.Request) -> web.StreamResponse:
    ids = common.ids_of((await request.post()).getall("ids", []))
    jobs = [j for j in [await _maybe(request, i) for i in ids] if j is not None]
    if not jobs:
        raise NotFound("no such import")
    users = await _users(request)
    header = [i18n.gettext(c.label) for c in TABLE.columns]

    async def rows():
        for j in jobs:
            yield [j.file_name, users.get(j.user_id, "") if j.user_id else "",
                   j.created_at.strftime("%Y-%m-%d %H:%M"), i18n.gettext(imports.STATUS_LABELS[j.status]),
                   j.added, j.updated, j.skipped, j.rejected]

    return await common.table_download(request, "xlsx", "imports", header, rows())


async def _maybe(request: web.Request, import_id: int) -> imports.Import | None:
    try:
        return await imports.get(common.db(request), signed_in(request).partner_id, import_id)
    except NotFound:
        return None
