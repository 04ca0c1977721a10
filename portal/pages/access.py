"""Getting in: sign in (with the one-time-code step), sign up, confirmation, password reset."""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp_session import get_session

from config.errors import HeraldError, NotFound
from gateway.base.app import DB, REDIS
from gateway.base.mail import MailError
from portal import accounts, captcha, i18n, mails, throttle, tokens, twofactor
from portal.auth import (
    anonymous_only,
    begin_second_factor,
    client_address,
    complete_sign_in,
    pending_second_factor,
    portal_of,
    safe_next,
    sign_out,
    sign_out_everywhere,
    throttle_checks,
)
from portal.forms import Field, Form
from portal.i18n import N_
from portal.render import flash, public_base, render
from portal.security import mail_new_totp_secret, needs_second_factor
from portal.tenancy import Portal, has_terms

log = logging.getLogger("herald.portal.access")
routes = web.RouteTableDef()

SIGNIN_FIELDS = (
    Field("email", N_("E-mail"), "email", required=True, max_length=254, autocomplete="username"),
    Field("password", N_("Password"), "password", required=True, max_length=200,
          autocomplete="current-password"),
)
CODE_FIELDS = (
    Field("code", N_("Code from your authenticator app"), required=True, max_length=8,
          autocomplete="one-time-code", attrs={"inputmode": "numeric", "pattern": "[0-9 ]*"}),
)
FORGOT_FIELDS = (
    Field("email", N_("E-mail"), "email", required=True, max_length=254, autocomplete="username",
          clean=(accounts.normalise_email,)),
)
NEW_PASSWORD_FIELDS = (
    Field("password", N_("New password"), "password", required=True, autocomplete="new-password",
          help=N_("At least 8 characters.")),
    Field("password_confirm", N_("Repeat the new password"), "password", required=True,
          autocomplete="new-password"),
)


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


# Sign in

@routes.get("/signin")
@anonymous_only
async def signin_page(request: web.Request) -> web.Response:
    form = Form(SIGNIN_FIELDS)
    return render(request, "access/signin.html", {"form": form, "next": _next(request)},
                  title=i18n.gettext("Sign in"))


def _next(request: web.Request, posted: str | None = None) -> str:
    """Where to go after signing in (never back to the sign-in pages)."""
    target = safe_next(posted if posted is not None else request.query.get("next"))
    return "/" if target.startswith("/signin") else target


@routes.post("/signin")
@anonymous_only
async def signin(request: web.Request) -> web.Response:
    data = await request.post()
    form = Form(SIGNIN_FIELDS, data)
    next_path = _next(request, str(data.get("next", "")))
    portal = portal_of(request)
    redis = request.app[REDIS]
    unconfirmed = False
    if form.validate():
        email = form.cleaned["email"]
        checks = throttle_checks(request, email)
        wait = await throttle.locked_for(redis, checks)
        if wait:
            form.error("", N_("Too many failed attempts. Wait %(minutes)s min and try again."),
                       minutes=_minutes(wait))
        else:
            found = await accounts.check_credentials(
                request.app[DB], portal.id, email, form.cleaned["password"]
            )
            if found.user_id is None:
                await throttle.record_failure(redis, checks)
                form.error("", N_("Wrong e-mail or password."))
            elif found.status == "pending":
                unconfirmed = True
                form.error("", N_("Confirm your e-mail address first: follow the link we sent you."))
            elif found.status != "active":
                form.error("", N_("This account is disabled. Contact your partner."))
            else:
                await throttle.clear(redis, checks[0][0])
                user = await accounts.load(request.app[DB], found.user_id)
                assert user is not None
                if needs_second_factor(portal, user):
                    if not user.totp_secret:
                        await _mail_secret(request, portal, user)
                    await begin_second_factor(request, user.id, next_path)
                    raise web.HTTPSeeOther("/signin/verify")
                await complete_sign_in(request, user.id)
                raise web.HTTPSeeOther(next_path)
    return render(
        request, "access/signin.html",
        {"form": form, "next": next_path, "unconfirmed": unconfirmed},
        status=400, title=i18n.gettext("Sign in"),
    )


async def _mail_secret(request: web.Request, portal: Portal, user: accounts.Account) -> None:
    try:
        await mail_new_totp_secret(request.app, portal, user)
        await flash(request, N_("We have e-mailed you a key for your authenticator app."), "info")
    except MailError:
        log.exception("event=totp_mail_failed user_id=%s", user.id)


@routes.get("/signin/verify")
async def verify_page(request: web.Request) -> web.Response:
    session = await get_session(request)
    if pending_second_factor(session) is None:
        raise web.HTTPSeeOther("/signin")
    return render(request, "access/verify.html", {"form": Form(CODE_FIELDS)},
                  title=i18n.gettext("Two-factor authentication"))


@routes.post("/signin/verify")
async def verify(request: web.Request) -> web.Response:
    session = await get_session(request)
    pending = pending_second_factor(session)
    if pending is None:
        await flash(request, N_("Your sign-in took too long. Please sign in again."), "error")
        raise web.HTTPSeeOther("/signin")
    form = Form(CODE_FIELDS, await request.post())
    redis = request.app[REDIS]
    user = await accounts.load(request.app[DB], pending["uid"])
    if user is None or user.status != "active":
        raise web.HTTPSeeOther("/signin")
    if form.validate():
        checks = throttle_checks(request, user.email)
        wait = await throttle.locked_for(redis, checks)
        if wait:
            form.error("", N_("Too many failed attempts. Wait %(minutes)s min and try again."),
                       minutes=_minutes(wait))
        elif user.totp_secret and await twofactor.verify(redis, user.id, user.totp_secret,
                                                         form.cleaned["code"]):
            await throttle.clear(redis, checks[0][0])
            await complete_sign_in(request, user.id)
            raise web.HTTPSeeOther(safe_next(pending.get("next")))
        else:
            await throttle.record_failure(redis, checks)
            form.error("code", N_("That code is not right. Enter the code your app shows now."))
    return render(request, "access/verify.html", {"form": form}, status=400,
                  title=i18n.gettext("Two-factor authentication"))


@routes.post("/signout")
async def signout(request: web.Request) -> web.Response:
    await sign_out(request)
    await flash(request, N_("You have signed out."), "info")
    raise web.HTTPSeeOther("/signin")


# Sign up

def _signup_fields(portal: Portal, custom: list[accounts.RegistrationField]) -> list[Field]:
    fields = [
        Field("first_name", N_("First name"), required=True, max_length=accounts.NAME_MAX,
              autocomplete="given-name"),
        Field("last_name", N_("Last name"), required=True, max_length=accounts.NAME_MAX,
              autocomplete="family-name"),
        Field("company", N_("Company name"), required=True, max_length=200,
              autocomplete="organization"),
        Field("email", N_("E-mail"), "email", required=True, max_length=254, autocomplete="email",
              clean=(accounts.normalise_email,)),
        Field("password", N_("Password"), "password", required=True, autocomplete="new-password",
              help=N_("At least 8 characters.")),
        Field("password_confirm", N_("Confirm password"), "password", required=True,
              autocomplete="new-password"),
    ]
    for extra in custom:
        fields.append(Field(
            f"cf_{extra.key}", extra.label, "select" if extra.kind == "select" else extra.kind,
            required=extra.required, max_length=extra.max_length, translate=False,
            choices=[(o, o) for o in extra.options],
        ))
    fields += [
        Field("language", N_("Language"), "select", required=True,
              choices=[(code, i18n.language_name(code)) for code in portal.languages]),
        Field("captcha", N_("Characters in the picture"), required=True, max_length=10,
              autocomplete="off", attrs={"autocapitalize": "characters", "spellcheck": "false"}),
        Field("accept_terms", N_("I agree to the Terms of Service and the Privacy Policy."),
              "checkbox", required=True),
    ]
    if has_terms(portal):
        fields.append(Field(
            "accept_data_processing",
            N_("I consent to the processing of my personal data as the Terms and Conditions describe."),
            "checkbox", required=True,
        ))
    return fields


async def _signup_context(request: web.Request) -> tuple[Portal, list[accounts.RegistrationField], list[Field]]:
    portal = portal_of(request)
    if not portal.allow_signup:
        raise NotFound()
    custom = await accounts.registration_fields(request.app[DB], portal.owner_partner_id)
    return portal, custom, _signup_fields(portal, custom)


async def _render_signup(request: web.Request, form: Form, custom: list, *, status: int = 200) -> web.Response:
    challenge = await captcha.new_challenge(request.app[REDIS])
    return render(
        request, "access/signup.html",
        {"form": form, "captcha_id": challenge, "custom_names": [f"cf_{c.key}" for c in custom]},
        status=status, title=i18n.gettext("Create an account"),
    )


@routes.get("/signup")
@anonymous_only
async def signup_page(request: web.Request) -> web.Response:
    _portal, custom, fields = await _signup_context(request)
    form = Form(fields, initial={"language": i18n.current_language()})
    return await _render_signup(request, form, custom)


@routes.post("/signup")
@anonymous_only
async def signup(request: web.Request) -> web.Response:
    portal, custom, fields = await _signup_context(request)
    data = await request.post()
    form = Form(fields, data)
    form.validate()
    # The challenge is spent whatever else is wrong: one guess per picture.
    if not await captcha.check(request.app[REDIS], str(data.get("captcha_id", "")),
                               str(data.get("captcha", ""))):
        form.errors.pop("captcha", None)
        form.error("captcha", N_("The characters do not match the picture. Try the new one."))
    if form.valid:
        try:
            accounts.validate_password(form.cleaned["password"], form.cleaned["password_confirm"])
            cleaned = form.cleaned
            consents = ("terms", "privacy") + (("data_processing",) if has_terms(portal) else ())
            user_id = await _register(request, portal, accounts.SignUp(
                first_name=cleaned["first_name"], last_name=cleaned["last_name"],
                company=cleaned["company"], email=cleaned["email"], password=cleaned["password"],
                language=cleaned["language"],
                custom_fields={c.key: cleaned[f"cf_{c.key}"] for c in custom
                               if cleaned.get(f"cf_{c.key}") not in ("", None)},
                consents=consents,
            ))
        except HeraldError as exc:
            form.fail(exc)
    if not form.valid:
        return await _render_signup(request, form, custom, status=400)
    await _send_confirmation(request, portal, user_id, form.cleaned["email"], form.cleaned["language"])
    session = await get_session(request)
    session["signup_email"] = form.cleaned["email"]
    raise web.HTTPSeeOther("/signup/sent")


async def _register(request: web.Request, portal: Portal, form: accounts.SignUp) -> int:
    async with request.app[DB].acquire() as conn:
        return await accounts.register(conn, portal, form, remote_addr=client_address(request))


async def _send_confirmation(request: web.Request, portal: Portal, user_id: int, email: str, language: str) -> bool:
    token = await tokens.issue(request.app[DB], user_id, "confirm")
    link = f"{public_base(request)}/signup/confirm/{token}"
    try:
        await mails.send(request.app, portal, to=email, language=language, template="confirm",
                         subject=N_("Confirm your e-mail for %(portal)s"), link=link)
    except MailError:
        log.exception("event=confirmation_mail_failed user_id=%s", user_id)
        return False
    return True


@routes.get("/signup/sent")
async def signup_sent(request: web.Request) -> web.Response:
    session = await get_session(request)
    return render(request, "access/signup_sent.html", {"email": session.get("signup_email", "")},
                  title=i18n.gettext("Check your e-mail"))


@routes.get("/signup/confirm/{token}")
async def confirm(request: web.Request) -> web.Response:
    db = request.app[DB]
    user_id = await tokens.consume(db, request.match_info["token"], "confirm")
    if user_id is None or not await accounts.activate(db, user_id):
        return render(request, "access/message.html", {
            "heading": i18n.gettext("This link does not work"),
            "text": i18n.gettext("It may have been used already or be too old. Sign in, or ask for a new link."),
        }, status=404, title=i18n.gettext("This link does not work"))
    user = await accounts.load(db, user_id)
    assert user is not None
    portal = portal_of(request)
    if portal.require_2fa and portal.id == user.portal_id:
        await _mail_secret(request, portal, user)
    await flash(request, N_("Your e-mail address is confirmed. You can sign in now."))
    raise web.HTTPSeeOther("/signin")


@routes.post("/signup/resend")
async def resend_confirmation(request: web.Request) -> web.Response:
    data = await request.post()
    email = str(data.get("email", "")).strip()[:254]
    portal = portal_of(request)
    redis = request.app[REDIS]
    allowed = await throttle.allow(redis, throttle.mail_key("addr", client_address(request)), throttle.MAIL_LIMIT) \
        and await throttle.allow(redis, throttle.mail_key("confirm", email), throttle.MAIL_LIMIT)
    if email and allowed:
        found = await accounts.find_by_email(request.app[DB], portal.id, email)
        if found is not None and found.status == "pending":
            await _send_confirmation(request, portal, found.id, found.email, found.language)
    # The same answer whether or not the address has an account.
    await flash(request, N_("If an account is waiting for confirmation, we have sent a new link."), "info")
    raise web.HTTPSeeOther("/signin")


@routes.get("/captcha/{challenge}.png")
async def captcha_image(request: web.Request) -> web.Response:
    body = await captcha.image(request.app[REDIS], request.match_info["challenge"])
    if body is None:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type="image/png", headers={"Cache-Control": "no-store"})


@routes.get("/captcha/new")
async def captcha_new(request: web.Request) -> web.Response:
    challenge = await captcha.new_challenge(request.app[REDIS])
    return web.json_response({"id": challenge, "image": f"/captcha/{challenge}.png"},
                             headers={"Cache-Control": "no-store"})


# Terms and privacy policy of the portal

@routes.get("/terms")
async def terms(request: web.Request) -> web.Response:
    portal = portal_of(request)
    return render(request, "access/legal.html", {"body": portal.terms_text},
                  title=i18n.gettext("Terms of Service"))


@routes.get("/privacy")
async def privacy(request: web.Request) -> web.Response:
    portal = portal_of(request)
    return render(request, "access/legal.html", {"body": portal.privacy_text},
                  title=i18n.gettext("Privacy Policy"))


# Password reset

@routes.get("/password/forgot")
async def forgot_page(request: web.Request) -> web.Response:
    return render(request, "access/forgot.html", {"form": Form(FORGOT_FIELDS)},
                  title=i18n.gettext("Reset your password"))


@routes.post("/password/forgot")
async def forgot(request: web.Request) -> web.Response:
    form = Form(FORGOT_FIELDS, await request.post())
    if not form.validate():
        return render(request, "access/forgot.html", {"form": form}, status=400,
                      title=i18n.gettext("Reset your password"))
    email = form.cleaned["email"]
    portal = portal_of(request)
    redis = request.app[REDIS]
    allowed = await throttle.allow(redis, throttle.mail_key("addr", client_address(request)), throttle.MAIL_LIMIT) \
        and await throttle.allow(redis, throttle.mail_key("reset", email), throttle.MAIL_LIMIT)
    found = await accounts.find_by_email(request.app[DB], portal.id, email) if allowed else None
    if found is not None and found.status == "active":
        token = await tokens.issue(request.app[DB], found.id, "reset")
        link = f"{public_base(request)}/password/reset/{token}"
        try:
            await mails.send(request.app, portal, to=found.email, language=found.language,
                             template="reset", subject=N_("Reset your password for %(portal)s"),
                             link=link, name=found.first_name)
        except MailError:
            log.exception("event=reset_mail_failed user_id=%s", found.id)
    # The same answer whether or not the address has an account.
    await flash(request, N_("If an account uses this address, we have sent it a link to choose a new password."), "info")
    raise web.HTTPSeeOther("/signin")


@routes.get("/password/reset/{token}")
async def reset_page(request: web.Request) -> web.Response:
    if await tokens.peek(request.app[DB], request.match_info["token"], "reset") is None:
        return _dead_link(request)
    return render(request, "access/reset.html", {"form": Form(NEW_PASSWORD_FIELDS)},
                  title=i18n.gettext("Choose a new password"))


def _dead_link(request: web.Request) -> web.Response:
    return render(request, "access/message.html", {
        "heading": i18n.gettext("This link does not work"),
        "text": i18n.gettext("Links to reset a password work once, for one hour. Ask for a new one."),
        "action": ("/password/forgot", i18n.gettext("Ask for a new link")),
    }, status=404, title=i18n.gettext("This link does not work"))


@routes.post("/password/reset/{token}")
async def reset(request: web.Request) -> web.Response:
    form = Form(NEW_PASSWORD_FIELDS, await request.post())
    if form.validate():
        try:
            accounts.validate_password(form.cleaned["password"], form.cleaned["password_confirm"])
        except HeraldError as exc:
            form.fail(exc)
    if not form.valid:
        return render(request, "access/reset.html", {"form": form}, status=400,
                      title=i18n.gettext("Choose a new password"))
    user_id = await tokens.consume(request.app[DB], request.match_info["token"], "reset")
    if user_id is None:
        return _dead_link(request)
    await accounts.set_password(request.app[DB], user_id, form.cleaned["password"])
    # Whoever knew the old password is signed out too.
    await sign_out_everywhere(request, user_id, keep_current=False)
    await flash(request, N_("Your password is changed. Sign in with the new one."))
    raise web.HTTPSeeOther("/signin")
