"""CSV uploads and downloads of the Admin Panel (reference book, vendor rates, plan rates)."""

from __future__ import annotations

from aiohttp import web

from portal.forms import Field, Form
from portal.i18n import N_

MAX_CSV_BYTES = 5 * 1024 * 1024


def upload_fields(*, replace_help: str = N_("Rows the file does not list are removed.")) -> tuple[Field, ...]:
    return (
        Field("file", N_("CSV file"), "file", required=True, attrs={"accept": ".csv,text/csv"}),
        Field("replace", N_("Replace everything"), "checkbox", help=replace_help),
    )


async def read_csv_upload(request: web.Request, fields: tuple[Field, ...] | None = None) -> tuple[Form, str | None]:
    """The posted form and the uploaded file's text (None, with a field error, when unusable)."""
    data = await request.post()
    fields = fields or upload_fields()
    form = Form(fields, data)
    form.validate()
    upload = data.get("file")
    form.values["file"] = ""  # a file input never shows a value back
    if not form.valid:
        return form, None
    if not hasattr(upload, "file"):
        form.errors.pop("file", None)
        form.error("file", N_("Choose a CSV file."))
        return form, None
    raw = upload.file.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        form.error("file", N_("The file is larger than 5 MB."))
        return form, None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        form.error("file", N_("The file is not UTF-8 text."))
        return form, None
    return form, text


def csv_response(text: str, filename: str) -> web.Response:
    return web.Response(
        body=text.encode(), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
