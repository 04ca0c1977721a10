"""The reference book (system owner only): number prefixes → MCC/MNC, imported and exported as CSV."""

from __future__ import annotations

from aiohttp import web

from accounts.tenancy import require_owner
from billing import refbook
from config.errors import HeraldError
from portal import i18n
from portal.admin.common import admin_only, db, page, scope_of
from portal.admin.uploads import csv_response, read_csv_upload, upload_fields
from portal.forms import Form
from portal.i18n import N_

routes = web.RouteTableDef()


async def _page(request: web.Request, form: Form, report=None, status: int = 200) -> web.Response:
    count = await db(request).fetchval("SELECT count(*) FROM number_prefixes")
    return page(request, "admin/refbook.html", {
        "form": form, "report": report, "count": count, "header": ",".join(refbook.HEADER),
    }, active="refbook", title=i18n.gettext("Reference book"), status=status)


@routes.get("/admin/reference-book")
@admin_only
async def refbook_page(request: web.Request) -> web.Response:
    require_owner(scope_of(request))
    return await _page(request, Form(upload_fields()))


@routes.post("/admin/reference-book")
@admin_only
async def refbook_import(request: web.Request) -> web.Response:
    scope = scope_of(request)
    require_owner(scope)
    form, text = await read_csv_upload(request, upload_fields(
        replace_help=N_("Prefixes the file does not list are removed.")))
    if text is not None:
        try:
            async with db(request).acquire() as conn:
                report = await refbook.import_csv(conn, scope, text, replace=form.cleaned["replace"])
        except HeraldError as exc:
            form.fail(exc)
        else:
            return await _page(request, Form(upload_fields()), report)
    return await _page(request, form, status=400)


@routes.get("/admin/reference-book.csv")
@admin_only
async def refbook_export(request: web.Request) -> web.Response:
    text = await refbook.export_csv(db(request), scope_of(request))
    return csv_response(text, "reference-book.csv")
