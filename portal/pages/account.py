"""Account Settings: My Account (name, custom fields) and Security (password, 2FA, sessions)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session

from config.errors import Forbidden, HeraldError
from gateway.base.app import DB, REDIS
from portal import accounts, i18n, twofactor
from portal.auth import login_required, portal_of, sign_out_everywhere, signed_in
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash, render
from portal.security import needs_second_factor

routes = web.RouteTableDef()
SETUP_SECRET = "totp_setup"  # session key: a new secret waiting for its first code

BASE_PROFILE_FIELDS = (
    Field("first_name", N_("First name"), required=True, max_length=accounts.NAME_MAX,
          autocomplete="given-name"),
    Field("last_name", N_("Last name"), required=True, max_length=accounts.NAME_MAX,
          autocomplete="family-name"),
)
PASSWORD_FIELDS = (
    Field("current_password", N_("Current password"), "password", required=True,
          autocomplete="current-password"),
    Field("password", N_("New password"), "password", required=True, autocomplete="new-password",
          help=N_("At least 8 characters.")),
    Field("password_confirm", N_("Repeat the new password"), "password", required=True,
          autocomplete="new-password"),
)
CODE_FIELDS = (
    Field("code", N_("Code from your authenticator app"), required=True, max_length=8,
          autocomplete="one-time-code", attrs={"inputmode": "numeric", "pattern": "[0-9 ]*"}),
)
DISABLE_FIELDS = (
    Field("current_password", N_("Current password"), "password", required=True,
          autocomplete="current-password"),
)


async def _profile_fields(request: web.Request) -> tuple[list[Field], list[accounts.RegistrationField]]:
    user = signed_in(request)
    db = request.app[DB]
    contract = await accounts.contract_partner_id(db, user.partner_id)
    custom = await accounts.registration_fields(db, contract)
    fields = list(BASE_PROFILE_FIELDS)
    for extra in custom:
        fields.append(Field(
            f"cf_{extra.key}", extra.label, extra.kind, required=extra.required,
            max_length=extra.max_length, translate=False, choices=[(o, o) for o in extra.options],
        ))
    return fields, custom


@routes.get("/account")
@login_required
async def profile_page(request: web.Request) -> web.Response:
    user = signed_in(request)
    fields, custom = await _profile_fields(request)
    initial = {"first_name": user.first_name, "last_name": user.last_name}
    initial.update({f"cf_{c.key}": user.custom_fields.get(c.key, "") for c in custom})
    return _render_profile(request, Form(fields, initial=initial))


def _render_profile(request: web.Request, form: Form, status: int = 200) -> web.Response:
    return render(request, "account/profile.html", {"form": form, "tab": "profile"}, status=status,
                  title=i18n.gettext("Account Settings"))


@routes.post("/account")
@login_required
async def profile_save(request: web.Request) -> web.Response:
    user = signed_in(request)
    fields, custom = await _profile_fields(request)
    form = Form(fields, await request.post())
    if not form.validate():
        return _render_profile(request, form, status=400)
    await accounts.update_profile(
        request.app[DB], user.id, first_name=form.cleaned["first_name"],
        last_name=form.cleaned["last_name"],
        custom_fields={c.key: form.cleaned[f"cf_{c.key}"] for c in custom},
    )
    await flash(request, N_("Your details are saved."))
    raise web.HTTPSeeOther("/account")


# Security

async def _render_security(
    request: web.Request, *, password_form: Form | None = None, code_form: Form | None = None,
    disable_form: Form | None = None, status: int = 200,
) -> web.Response:
    user = signed_in(request)
    portal = portal_of(request)
    session = await get_session(request)
    setup_secret = session.get(SETUP_SECRET)
    setup = None
    if setup_secret:
        uri = twofactor.provisioning_uri(setup_secret, user.email, portal.name)
        setup = {"qr": twofactor.qr_svg(uri), "secret": twofactor.format_secret(setup_secret)}
    return render(request, "account/security.html", {
        "tab": "security",
        "password_form": password_form or Form(PASSWORD_FIELDS),
        "code_form": code_form or Form(CODE_FIELDS),
        "disable_form": disable_form or Form(DISABLE_FIELDS),
        "two_factor_on": needs_second_factor(portal, user) and bool(user.totp_secret),
        "two_factor_required": portal.require_2fa,
        "setup": setup,
    }, status=status, title=i18n.gettext("Account Settings"))


@routes.get("/account/security")
@login_required
async def security_page(request: web.Request) -> web.Response:
    return await _render_security(request)


@routes.post("/account/security/password")
@login_required
async def change_password(request: web.Request) -> web.Response:
    user = signed_in(request)
    form = Form(PASSWORD_FIELDS, await request.post())
    if form.validate():
        try:
            accounts.validate_password(form.cleaned["password"], form.cleaned["password_confirm"])
        except HeraldError as exc:
            form.fail(exc)
        if form.valid and not await accounts.password_matches(
            request.app[DB], user.id, form.cleaned["current_password"]
        ):
            form.error("current_password", N_("This is not your current password."))
    if not form.valid:
        return await _render_security(request, password_form=form, status=400)
    await accounts.set_password(request.app[DB], user.id, form.cleaned["password"])
    # Other browsers signed in with the old password are signed out; this one stays.
    await sign_out_everywhere(request, user.id, keep_current=True)
    await flash(request, N_("Your password is changed. Your other sessions were signed out."))
    raise web.HTTPSeeOther("/account/security")


@routes.post("/account/security/2fa/new")
@login_required
async def start_two_factor(request: web.Request) -> web.Response:
    """A new secret to scan; it replaces the old one only once a code from it is entered."""
    session = await get_session(request)
    session[SETUP_SECRET] = twofactor.new_secret()
    raise web.HTTPSeeOther("/account/security#two-factor")


@routes.post("/account/security/2fa/confirm")
@login_required
async def confirm_two_factor(request: web.Request) -> web.Response:
    user = signed_in(request)
    session = await get_session(request)
    secret = session.get(SETUP_SECRET)
    if not secret:
        raise web.HTTPSeeOther("/account/security")
    form = Form(CODE_FIELDS, await request.post())
    if form.validate() and not await twofactor.verify(
        request.app[REDIS], user.id, secret, form.cleaned["code"]
    ):
        form.error("code", N_("That code is not right. Enter the code your app shows now."))
    if not form.valid:
        return await _render_security(request, code_form=form, status=400)
    await accounts.set_totp(request.app[DB], user.id, secret, True)
    del session[SETUP_SECRET]
    await flash(request, N_("Two-factor authentication is on with your new key."))
    raise web.HTTPSeeOther("/account/security")


@routes.post("/account/security/2fa/cancel")
@login_required
async def cancel_two_factor(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.pop(SETUP_SECRET, None)
    raise web.HTTPSeeOther("/account/security")


@routes.post("/account/security/2fa/disable")
@login_required
async def disable_two_factor(request: web.Request) -> web.Response:
    user = signed_in(request)
    if portal_of(request).require_2fa:
        raise Forbidden("This portal requires two-factor authentication.")
    form = Form(DISABLE_FIELDS, await request.post())
    if form.validate() and not await accounts.password_matches(
        request.app[DB], user.id, form.cleaned["current_password"]
    ):
        form.error("current_password", N_("This is not your current password."))
    if not form.valid:
        return await _render_security(request, disable_form=form, status=400)
    await accounts.set_totp(request.app[DB], user.id, None, False)
    await flash(request, N_("Two-factor authentication is off."))
    raise web.HTTPSeeOther("/account/security")


@routes.post("/account/security/sessions/end")
@login_required
async def end_all_sessions(request: web.Request) -> web.Response:
    await sign_out_everywhere(request, signed_in(request).id, keep_current=False)
    await flash(request, N_("You are signed out on every device."), "info")
    raise web.HTTPSeeOther("/signin")
