"""API Connections: the partner's API keys and the help page of ``POST /api/send_sms``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp_session import get_session

from config.errors import HeraldError
from gateway.base.app import DB, SETTINGS
from gateway.intake import apikeys
from portal import i18n, tables
from portal.auth import login_required, signed_in
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash, public_base, render

routes = web.RouteTableDef()
# Session key: the plain key and/or signing secret, shown on the next page and dropped.
NEW_KEY = "new_api_key"

TTL_LABELS = {
    "1d": N_("1 day"), "7d": N_("7 days"), "30d": N_("30 days"), "3m": N_("3 months"),
    "1y": N_("1 year"), "never": N_("Never expires"),
}

KEY_FIELDS = (
    Field("name", N_("Name"), required=True, max_length=apikeys.NAME_MAX,
          help=N_("Up to 60 characters, unique among your keys."), clean=(apikeys.validate_name,)),
    Field("callback_url", N_("Callback URL"), "url", max_length=apikeys.CALLBACK_MAX,
          placeholder="https://example.com/herald/status",
          help=N_("Where we send delivery reports and incoming messages. Optional."),
          clean=(apikeys.validate_callback_url,)),
    Field("ttl", N_("Expires after"), "select", required=True, choices=list(TTL_LABELS.items())),
)

KEYS_TABLE = tables.TableSpec(
    id="api_keys",
    label=N_("API keys"),
    columns=(
        tables.Column("name", N_("Name"), hideable=False),
        tables.Column("status", N_("Status")),
        tables.Column("expires", N_("Expires")),
        tables.Column("last_used", N_("Last used")),
        tables.Column("created", N_("Created")),
        tables.Column("callback", N_("Callback URL"), default=False),
        tables.Column("prefix", N_("Key starts with"), default=False),
    ),
    filters=(
        tables.Filter("q", N_("Search by name")),
        tables.Filter("status", N_("Status"), "select",
                      (("active", N_("Active")), ("expired", N_("Expired")))),
    ),
    bulk_actions=(
        tables.BulkAction("remove", N_("Remove"), "/api-connections/keys/bulk-remove", danger=True),
    ),
    row_actions=True,
    sort_key=lambda key: (key.created_at, key.id),
    row_id=lambda key: key.id,
)


def last_used_text(last_used: datetime | None, now: datetime) -> str:
    """"Never used" or "Last used within the past …", in the current language."""
    if last_used is None:
        return i18n.gettext("Never used")
    age = now - last_used
    if age < timedelta(hours=1):
        return i18n.gettext("Last used within the past hour")
    if age < timedelta(days=1):
        return i18n.gettext("Last used within the past day")
    if age < timedelta(days=7):
        return i18n.gettext("Last used within the past week")
    months = max(1, -(-age.days // 30))
    return i18n.ngettext(
        "Last used within the past month", "Last used within the past %(num)s months", months
    )


@routes.get("/api-connections")
@login_required
async def api_connections(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/api-connections/keys")


@routes.get("/api-connections/keys")
@login_required
async def keys_page(request: web.Request) -> web.Response:
    user = signed_in(request)
    db = request.app[DB]

    async def fetch(*, filters: dict, after: tuple | None, before: tuple | None, limit: int) -> list:
        return await apikeys.list_page(
            db, user.partner_id, search=filters["q"], status=filters["status"],
            after=after, before=before, limit=limit,
        )

    view = await tables.load(request, KEYS_TABLE, fetch,
                             prefs=tables.table_prefs(user.ui_prefs, KEYS_TABLE.id))
    session = await get_session(request)
    new_key = session.pop(NEW_KEY, None)  # shown once: gone from the session from now on
    now = datetime.now(UTC)
    return render(request, "api/keys.html", {
        "table": view, "new_key": new_key, "now": now, "tab": "keys",
        "ttl_labels": TTL_LABELS, "last_used_text": lambda k: last_used_text(k.last_used_at, now),
    }, active="api", title=i18n.gettext("API keys"))


@routes.get("/api-connections/keys/new")
@login_required
async def new_key_page(request: web.Request) -> web.Response:
    return _render_new(request, Form(KEY_FIELDS, initial={"ttl": "30d"}))


def _render_new(request: web.Request, form: Form, status: int = 200) -> web.Response:
    return render(request, "api/key_new.html", {"form": form, "tab": "keys"}, status=status,
                  active="api", title=i18n.gettext("Create an API key"))


@routes.post("/api-connections/keys")
@login_required
async def create_key(request: web.Request) -> web.Response:
    user = signed_in(request)
    form = Form(KEY_FIELDS, await request.post())
    if form.validate():
        try:
            new = await apikeys.create_with_secret(
                request.app[DB], app_secret=request.app[SETTINGS].secret_key,
                partner_id=user.partner_id, created_by=user.id, name=form.cleaned["name"],
                callback_url=form.cleaned["callback_url"], ttl=form.cleaned["ttl"],
            )
        except HeraldError as exc:
            form.fail(exc)
    if not form.valid:
        return _render_new(request, form, status=400)
    session = await get_session(request)
    session[NEW_KEY] = {"name": new.key.name, "key": new.plain, "signing_secret": new.signing_secret}
    raise web.HTTPSeeOther("/api-connections/keys")


def _key_id(request: web.Request) -> int:
    try:
        return int(request.match_info["key_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


@routes.post(r"/api-connections/keys/{key_id:\d+}/refresh")
@login_required
async def refresh_key(request: web.Request) -> web.Response:
    key = await apikeys.refresh(request.app[DB], signed_in(request).partner_id, _key_id(request))
    await flash(request, N_("The key “%(name)s” is valid again from now."), name=key.name)
    raise web.HTTPSeeOther("/api-connections/keys")


@routes.post(r"/api-connections/keys/{key_id:\d+}/signing-secret")
@login_required
async def rotate_signing_secret(request: web.Request) -> web.Response:
    """A new callback signing secret, shown once on the keys page like a new key."""
    key, secret = await apikeys.rotate_signing_secret(
        request.app[DB], signed_in(request).partner_id, _key_id(request),
        request.app[SETTINGS].secret_key)
    session = await get_session(request)
    session[NEW_KEY] = {"name": key.name, "signing_secret": secret}
    raise web.HTTPSeeOther("/api-connections/keys")


@routes.post(r"/api-connections/keys/{key_id:\d+}/remove")
@login_required
async def remove_key(request: web.Request) -> web.Response:
    await apikeys.remove_one(request.app[DB], signed_in(request).partner_id, _key_id(request))
    await flash(request, N_("The key is removed."))
    raise web.HTTPSeeOther("/api-connections/keys")


@routes.post("/api-connections/keys/bulk-remove")
@login_required
async def bulk_remove(request: web.Request) -> web.Response:
    ids = tables.selected_ids(await request.post())
    removed = await apikeys.remove(request.app[DB], signed_in(request).partner_id, ids) if ids else []
    if removed:
        await flash(request, i18n.ngettext("%(num)s key removed.", "%(num)s keys removed.", len(removed)))
    else:
        await flash(request, N_("Select at least one key."), "error")
    raise web.HTTPSeeOther("/api-connections/keys")


@routes.get("/api-connections/methods")
@login_required
async def methods_page(request: web.Request) -> web.Response:
    return render(request, "api/methods.html", {
        "tab": "methods", "base": public_base(request),
    }, active="api", title=i18n.gettext("API methods"))
