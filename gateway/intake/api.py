"""The HTTP JSON API: ``/api/send_sms``, sign-in for tokens, API keys, the OpenAPI document
(the credentials and the order of the checks: ``gateway/intake/README.md``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web

from accounts import users
from accounts.users import verify_password
from config.errors import HeraldError, Invalid
from gateway.accept.keys import API_LIMITER, PIPELINE
from gateway.accept.pipeline import Accepted, Fanout, Submission
from gateway.base.app import DB, SETTINGS
from gateway.intake import apikeys
from gateway.runtime.services import install
from viber.provider import STATUSES as VIBER_STATUSES

MAX_RECIPIENTS = 700           # spec §12.2 "Limitations"
OVER_LIMIT = f"not sent: only the first {MAX_RECIPIENTS} recipients of a request are sent"
TOKEN_MINUTES = 15
JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "herald-api"
MAX_TEXT = 10_000              # characters; far above any SMS (255 parts) or Viber message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Unauthorized(HeraldError):
    http_status = 401
    smpp_status = 0x0000000E  # ESME_RINVPASWD


class TooManyRequests(HeraldError):
    http_status = 429
    smpp_status = 0x00000058  # ESME_RTHROTTLED


# -- authentication ---------------------------------------------------------------------


def _bearer(request: web.Request) -> str:
    return apikeys.bearer_token(request.headers.get("Authorization", ""))


async def _api_key(request: web.Request) -> apikeys.ApiKey:
    token = _bearer(request)
    if not token:
        raise Unauthorized("Send the API key as 'Authorization: Bearer <key>'.")
    pool = request.app[DB]
    try:
        return await apikeys.verify(pool, token)
    except apikeys.InvalidApiKey:
        reason = await apikeys.refusal_reason(pool, token)
        text = {"removed": "This API key was removed.",
                "expired": "This API key has expired; refresh it or create a new one."}
        raise Unauthorized(text.get(reason, "Unknown API key.")) from None


def issue_token(secret: str, user_id: int, partner_id: int, now: float | None = None) -> str:
    """A signed access token for the key-management endpoints."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(user_id), "pid": partner_id, "aud": JWT_AUDIENCE, "iat": issued,
              "exp": issued + TOKEN_MINUTES * 60}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


@dataclass(frozen=True, slots=True)
class TokenUser:
    user_id: int
    partner_id: int


async def _token_user(request: web.Request) -> TokenUser:
    token = _bearer(request)
    if not token or token.startswith(apikeys.KEY_PREFIX):
        raise Unauthorized("Sign in at /api/login and send 'Authorization: Bearer <token>'.")
    try:
        claims = jwt.decode(token, request.app[SETTINGS].secret_key, algorithms=[JWT_ALGORITHM],
                            audience=JWT_AUDIENCE, options={"require": ["exp", "sub", "aud"]})
        user_id, partner_id = int(claims["sub"]), int(claims["pid"])
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired; sign in again.") from None
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        raise Unauthorized("Invalid token.") from None
    # A user disabled (or moved) after the token was issued loses access at once.
    still = await request.app[DB].fetchval(
        """SELECT true FROM users u JOIN partners p ON p.id = u.partner_id
           WHERE u.id = $1 AND u.partner_id = $2 AND u.status = 'active' AND p.status = 'active'""",
        user_id, partner_id,
    )
    if not still:
        raise Unauthorized("This account can no longer use the API.")
    return TokenUser(user_id, partner_id)


def _basic(request: web.Request) -> tuple[str, str]:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    email, _, password = decoded.partition(":")
    return email.strip(), password


_LOGIN_USER = """
SELECT u.id, u.partner_id, u.password_hash FROM users u
JOIN partners p ON p.id = u.partner_id
WHERE u.portal_id = (SELECT id FROM portals WHERE lower(host) = lower($1) OR is_default
                     ORDER BY lower(host) = lower($1) DESC LIMIT 1)
  AND lower(u.email) = lower($2) AND u.status = 'active' AND p.status = 'active'"""

async def login(request: web.Request) -> web.Response:
    """``POST /api/login`` with HTTP Basic: a JWT for the key-management endpoints."""
    email, password = _basic(request)
    if not email or not password:
        raise Unauthorized("Send the e-mail and password with HTTP Basic authentication.")
    limiter = request.app[API_LIMITER]
    if await limiter.throttled(f"login:{email.lower()}", tps=0.2, burst=5):
        raise TooManyRequests("Too many sign-in attempts; wait a minute.")
    host = request.host.split(":")[0]
    row = await request.app[DB].fetchrow(_LOGIN_USER, host, email)
    stored = row["password_hash"] if row else users.DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, password)
    if row is None or not ok:
        raise Unauthorized("Wrong e-mail or password.")
    token = issue_token(request.app[SETTINGS].secret_key, row["id"], row["partner_id"])
    return web.json_response(
        {"token": token, "tokenType": "Bearer", "expiresIn": TOKEN_MINUTES * 60}
    )


# -- API keys -----------------------------------------------------------------------------


def _key_json(key: apikeys.ApiKey, now: datetime) -> dict[str, Any]:
    def iso(dt: datetime | None) -> str | None:
        return dt.astimezone(UTC).isoformat(timespec="seconds") if dt else None

    return {
        "id": key.id, "name": key.name, "callbackUrl": key.callback_url, "expiry": key.ttl,
        "status": key.status(now), "prefix": key.key_prefix, "expiresAt": iso(key.expires_at),
        "lastUsedAt": iso(key.last_used_at), "createdAt": iso(key.created_at),
    }


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object.")
    return body


def _key_id(request: web.Request) -> int:
    return int(request.match_info["key_id"])


async def list_keys(request: web.Request) -> web.Response:
    who = await _token_user(request)
    keys = await apikeys.list_page(request.app[DB], who.partner_id, limit=200)
    now = datetime.now(UTC)
    return web.json_response({"keys": [_key_json(k, now) for k in keys]})


async def create_key(request: web.Request) -> web.Response:
    who = await _token_user(request)
    body = await _json_object(request)
    new = await apikeys.create_with_secret(
        request.app[DB], app_secret=request.app[SETTINGS].secret_key, partner_id=who.partner_id,
        created_by=who.user_id, name=str(body.get("name") or ""),
        callback_url=str(body.get("callbackUrl") or ""), ttl=str(body.get("expiry") or "30d"),
    )
    data = _key_json(new.key, datetime.now(UTC))
    data["key"] = new.plain  # shown this once; only its hash is kept
    data["signingSecret"] = new.signing_secret  # shown this once; kept sealed
    return web.json_response(data, status=201)


async def rotate_signing_secret(request: web.Request) -> web.Response:
    who = await _token_user(request)
    key, secret = await apikeys.rotate_signing_secret(
        request.app[DB], who.partner_id, _key_id(request), request.app[SETTINGS].secret_key)
    data = _key_json(key, datetime.now(UTC))
    data["signingSecret"] = secret
    return web.json_response(data)


async def refresh_key(request: web.Request) -> web.Response:
    who = await _token_user(request)
    key = await apikeys.refresh(request.app[DB], who.partner_id, _key_id(request))
    return web.json_response(_key_json(key, datetime.now(UTC)))


async def delete_key(request: web.Request) -> web.Response:
    who = await _token_user(request)
    await apikeys.remove_one(request.app[DB], who.partner_id, _key_id(request))
    return web.Response(status=204)


# -- send_sms -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One send_sms request item, checked."""

    channel: str                   # 'sms' | 'viber'
    fallback: str | None           # 'sms' for the Viber→SMS cascade
    sender: str
    recipients: tuple[str, ...]    # as written, repeats removed
    message: str
    label: str
    fallback_ttl: int | None
    flash: bool
    accept_mo: bool
    traffic_type: str | None
    button_url: str | None
    image_url: str | None
    button_caption: str | None


def _flag(raw: Any, field: str) -> bool:
    if raw is None or raw == "":
        return False
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise Invalid(f"{field} must be true or false.", field=field)


def _list(raw: Any) -> list[str]:
    """A JSON array, or a comma-separated string (query parameters), as stripped strings."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    # up to 700 numbers: each converted and stripped once
    stripped = [i.strip() if type(i) is str else str(i).strip() for i in items]
    return [i for i in stripped if i]


def _text(raw: Any, field: str, *, max_len: int = 2000) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str | int):
        raise Invalid(f"{field} must be a string.", field=field)
    text = str(raw).strip()
    if len(text) > max_len:
        raise Invalid(f"{field} is too long.", field=field)
    return text or None


def parse_send(params: dict[str, Any], today: str) -> SendRequest:
    """Check one request item (pure); Invalid naming the field that is wrong."""
    message = params.get("message")
    if message is None or (isinstance(message, str) and not message.strip()):
        raise Invalid("message is required and must not be empty.", field="message")
    if not isinstance(message, str):
        raise Invalid("message must be a string.", field="message")
    if len(message) > MAX_TEXT:
        raise Invalid(f"message has more than {MAX_TEXT} characters.", field="message")
    sender = _text(params.get("from"), "from", max_len=64)
    if not sender:
        raise Invalid("from (the sender ID) is required.", field="from")
    channels = [c.lower() for c in _list(params.get("channels"))]
    if not channels:
        raise Invalid("channels is required: [\"SMS\"], [\"Viber\"] or [\"Viber\", \"SMS\"].",
                      field="channels")
    combos = {("sms",): ("sms", None), ("viber",): ("viber", None), ("viber", "sms"): ("viber", "sms")}
    if tuple(channels) not in combos:
        raise Invalid("channels must be [\"SMS\"], [\"Viber\"] or [\"Viber\", \"SMS\"].",
                      field="channels")
    channel, fallback = combos[tuple(channels)]
    recipients = list(dict.fromkeys(_list(params.get("to"))))
    if not recipients:
        raise Invalid("to (at least one recipient number) is required.", field="to")
    fallback_ttl = None
    raw_ttl = params.get("fallbackTtl")
    if raw_ttl not in (None, ""):
        try:
            fallback_ttl = int(raw_ttl)
        except (TypeError, ValueError):
            raise Invalid("fallbackTtl must be a number of seconds.", field="fallbackTtl") from None
        if not 1 <= fallback_ttl <= 14 * 86400:
            raise Invalid("fallbackTtl must be between 1 second and 14 days.", field="fallbackTtl")
    flash = _flag(params.get("isFlashed", params.get("IsFlashed")), "isFlashed")
    accept_mo = _flag(params.get("acceptMO"), "acceptMO")
    if flash and channel != "sms":
        raise Invalid("isFlashed is valid only for the SMS channel.", field="isFlashed")
    traffic = _text(params.get("trafficType"), "trafficType")
    if traffic is not None:
        if traffic.upper() not in ("TRANSACTION", "PROMOTION"):
            raise Invalid("trafficType must be TRANSACTION or PROMOTION.", field="trafficType")
        traffic = traffic.lower()
    label = _text(params.get("label"), "label", max_len=200) or today
    return SendRequest(
        channel=channel, fallback=fallback, sender=sender, recipients=tuple(recipients),
        message=message, label=label, fallback_ttl=fallback_ttl, flash=flash, accept_mo=accept_mo,
        traffic_type=traffic, button_url=_text(params.get("buttonActionUrl"), "buttonActionUrl"),
        image_url=_text(params.get("imageUrl"), "imageUrl"),
        button_caption=_text(params.get("buttonCaption"), "buttonCaption", max_len=30),
    )


async def _send_params(request: web.Request) -> list[dict[str, Any]]:
    if request.method == "GET":
        query = request.query
        params: dict[str, Any] = {k: query.get(k) for k in query}
        if len(query.getall("to", [])) > 1:
            params["to"] = query.getall("to")
        if len(query.getall("channels", [])) > 1:
            params["channels"] = query.getall("channels")
        return [params]
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Invalid("The body is not valid JSON.") from None
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(i, dict) for i in items):
        raise Invalid("The body must be a JSON object or an array of objects.")
    return items


_PARTNER = "SELECT mo_enabled, api_tps FROM partners WHERE id = $1"


async def send_sms(request: web.Request) -> web.Response:
    """``POST|GET /api/send_sms``: one line per recipient (``gateway/intake/README.md``)."""
    key = await _api_key(request)
    app = request.app
    settings = app[SETTINGS]
    pipeline = app[PIPELINE]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    items = [parse_send(p, today) for p in await _send_params(request)]

    # Repeated recipients are ignored (spec §12.2 "Limitations"): one message per
    # number and content, whichever way the number was written.
    # Past the limit, only the first MAX_RECIPIENTS are sent (spec §12.2); the rest
    # are named in the results with the reason, so the client knows to resend them.
    normalise = pipeline.normalise
    plans: list[tuple[SendRequest, list[str], list[str | None]]] = []
    seen: dict[tuple[str, str, str], set[str]] = {}  # numbers per (sender, channel, message)
    overflow: list[str] = []
    total = 0
    for item in items:
        raws: list[str] = []
        msisdns: list[str | None] = []
        numbers = seen.setdefault((item.sender, item.channel, item.message), set())
        for raw in item.recipients:
            msisdn = normalise(raw)
            number = msisdn or raw
            if number in numbers:
                continue
            numbers.add(number)
            if total == MAX_RECIPIENTS:
                overflow.append(raw)
                continue
            total += 1
            raws.append(raw)
            msisdns.append(msisdn)
        plans.append((item, raws, msisdns))
    if any(i.accept_mo and i.flash for i in items):
        raise Invalid("MO messages are not supported in FlashMessages!", field="acceptMO")
    partner = await app[DB].fetchrow(_PARTNER, key.partner_id)
    if any(i.accept_mo for i in items) and not partner["mo_enabled"]:
        raise Invalid("Partner's MO messages mode is off!", field="acceptMO")
    tps = partner["api_tps"] if partner["api_tps"] is not None else settings.api_tps
    if total and await app[API_LIMITER].throttled(
        key.partner_id, tps, total, burst=max(tps, MAX_RECIPIENTS)
    ):
        raise TooManyRequests(f"Too many messages: this account may send {tps} per second.")

    fanouts: list[Fanout] = []
    shown: list[str] = []
    for item, raws, msisdns in plans:
        if not raws:
            continue
        template = Submission(
            partner_id=key.partner_id, origin="api", sender=item.sender,
            destination="", text=item.message, channel=item.channel,
            api_key_id=key.id, user_id=key.created_by, flash=item.flash,
            accept_mo=item.accept_mo, label=item.label, registered_delivery=1,
            callback_url=key.callback_url or None, traffic_type=item.traffic_type,
            fallback_channel=item.fallback, fallback_ttl=item.fallback_ttl if item.fallback else None,
            image_url=item.image_url, button_url=item.button_url,
            button_caption=item.button_caption,
        )
        shown += raws
        fanouts.append(Fanout(template, raws, msisdns))
    results = await pipeline.submit_fanouts(fanouts) if fanouts else []
    lines = [
        f"{number}: {r.message_id}" if type(r) is Accepted else f"{number}: {r.http_text}"
        for number, r in zip(shown, results, strict=True)
    ]
    lines += [f"{number}: {OVER_LIMIT}" for number in overflow]
    return web.json_response({"results": lines})


# -- OpenAPI ----------------------------------------------------------------------------------


# How a callback receiver checks a callback (also in README.md, "HTTP API").
CALLBACK_SIGNATURE_DOC = (
    "Each callback carries `X-Herald-Signature: t=<unix seconds>,v1=<hex>`. `v1` is"
    " HMAC-SHA256, keyed with the API key's signing secret (the `hrs_…` value shown once"
    " with the key, or when it is rotated) as UTF-8 bytes, over the ASCII of `t`, a dot,"
    " and the raw request body exactly as received. To check: recompute it, compare in"
    " constant time, and refuse a `t` more than 5 minutes from your clock (replays)."
    " A retried callback is signed again with a new `t`."
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 description of this module's endpoints and of the Viber providers'
    status webhook (:mod:`gateway.send.viber_connector`)."""
    error = {"$ref": "#/components/schemas/Error"}

    def answer(text: str, schema: dict | None = None) -> dict:
        body: dict[str, Any] = {"description": text}
        body["content"] = {"application/json": {"schema": schema or error}}
        return body

    send_fields = {
        "channels": {"type": "array", "items": {"type": "string", "enum": ["SMS", "Viber"]},
                     "description": "[\"SMS\"], [\"Viber\"], or [\"Viber\", \"SMS\"] (cascade)."},
        "from": {"type": "string", "description": "An enabled sender ID of every channel used."},
        "to": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
               "description": f"Numbers in international format; at most {MAX_RECIPIENTS};"
                              " repeats are ignored. A string may list numbers separated by commas."},
        "message": {"type": "string", "minLength": 1},
        "label": {"type": "string", "description": "Groups the messages in statistics;"
                                                   " default: today's date (yyyy-MM-dd)."},
        "fallbackTtl": {"type": "integer", "minimum": 1,
                        "description": "Seconds before a Viber message not yet delivered falls"
                                       " back to SMS (at most 14 days); without it, the server's"
                                       " default (HERALD_VIBER_FALLBACK_TTL, 1 hour unless set)."},
        "isFlashed": {"type": "boolean", "description": "Flash SMS (SMS channel only)."},
        "acceptMO": {"type": "boolean", "description": "Forward replies to the key's callback URL."},
        "trafficType": {"type": "string", "enum": ["TRANSACTION", "PROMOTION"]},
        "buttonActionUrl": {"type": "string", "format": "uri"},
        "imageUrl": {"type": "string", "format": "uri"},
        "buttonCaption": {"type": "string", "maxLength": 30},
    }
    send_request = {"type": "object", "required": ["channels", "from", "to", "message"],
                    "properties": send_fields}
    results = {"type": "object", "required": ["results"], "properties": {"results": {
        "type": "array", "items": {"type": "string"},
        "description": "\"<number>: <transaction id>\" or \"<number>: <error>\" per recipient."}}}
    key_schema = {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "callbackUrl": {"type": "string"},
        "expiry": {"type": "string", "enum": list(apikeys.TTL_CHOICES)},
        "status": {"type": "string", "enum": ["active", "expired"]},
        "prefix": {"type": "string"}, "expiresAt": {"type": "string", "nullable": True},
        "lastUsedAt": {"type": "string", "nullable": True}, "createdAt": {"type": "string"},
        "key": {"type": "string", "description": "Only in the answer to creation."},
        "signingSecret": {"type": "string", "description":
                          "The callback signing secret (hrs_…): only in the answers to creation"
                          " and to rotating it."}}}
    query_params = [
        {"name": name, "in": "query", "required": name in ("channels", "from", "to", "message"),
         "schema": {"type": "string"}}
        for name in send_fields
    ]
    send_answers = {
        "200": answer("One line per recipient.", results),
        "400": answer("The request as a whole is wrong (the field is named)."),
        "401": answer("Missing, unknown, removed or expired API key."),
        "429": answer("The account's messages-per-second allowance is used up."),
    }
    key_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    jwt_only = [{"token": []}]
    callback_body = {"type": "object", "required": ["transactionID", "dnis", "status", "eventTime",
                                                    "channel"], "properties": {
        "transactionID": {"type": "string", "description": "The id send_sms answered."},
        "dnis": {"type": "string", "description": "The recipient (for a reply: its sender)."},
        "status": {"type": "string", "enum": ["BILLED", "SENT", "DELIVERED", "UNDELIVERED",
                                              "FAILED", "SEEN"]},
        "eventTime": {"type": "string", "example": "2026-11-25T11:47:45.123+00:00"},
        "channel": {"type": "string", "enum": ["SMS", "VIBER"]},
        "message": {"type": "string", "description": "Only in an incoming reply (acceptMO); "
                    "the hex of its octets when encoding is binary."},
        "encoding": {"type": "string", "enum": ["binary"],
                     "description": "Only for a binary incoming reply: message is then hex."},
        "dataCoding": {"type": "integer", "description": "Binary incoming reply only: the carrier's "
                       "data_coding."},
        "udhi": {"type": "boolean", "description": "Binary incoming reply only: the octets start "
                 "with a user data header."}}}
    callbacks_doc = {"statusCallback": {"{callback URL of the API key}": {"post": {
        "summary": "Delivery report or incoming reply, POSTed to the key's callback URL",
        "description": CALLBACK_SIGNATURE_DOC,
        "parameters": [{"name": "X-Herald-Signature", "in": "header", "required": True,
                        "schema": {"type": "string", "example": "t=1764071265,v1=5d41…"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": callback_body}}},
        "responses": {"2XX": {"description": "Received. Anything else is retried with backoff."}},
    }}}}
    # The Viber provider's status reports (gateway.send.viber_connector, contract in viber/__init__.py).
    vendor_id = {"name": "vendor_id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 1},
                 "description": "The Viber vendor's id in Herald (Admin Panel, Vendors)."}
    report = {
        "type": "object", "required": ["message_id", "status"], "properties": {
            "message_id": {"oneOf": [{"type": "string", "maxLength": 200}, {"type": "integer"}],
                           "description": "The provider's id of the message, as it answered"
                                          " the send."},
            "status": {"type": "string", "enum": list(VIBER_STATUSES),
                       "description": "failed: the provider sent nothing (the message is"
                                      " refunded); expired counts as undelivered."},
            "timestamp": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                          "description": "When it happened: ISO 8601 (without an offset: UTC)"
                                         " or unix seconds; absent: when Herald received it."},
            "error": {"type": "string", "maxLength": 200,
                      "description": "The provider's reason, kept as the message's error text."}},
        "example": {"message_id": "vb-5f2c91", "status": "delivered",
                    "timestamp": "2026-12-03T08:00:00.000+00:00"}}
    report_result = {"type": "object", "required": ["result"], "properties": {
        "result": {"type": "string", "enum": ["applied", "ignored", "kept"]}}}
    viber_status = {"post": {
        "tags": ["Provider webhooks"],
        "summary": "A Viber provider's status report on a message it took",
        "description": "Called by the Viber provider, not by API users. Authenticated by the"
                       " vendor's own token (the one Herald sends to the provider); a token"
                       " is good only for its vendor's path. Answered once the report is"
                       " stored; the provider should retry any answer other than 200, 400"
                       " and 401.",
        "security": [{"vendorToken": []}],
        "parameters": [vendor_id],
        "requestBody": {"required": True, "content": {"application/json": {"schema": report}}},
        "responses": {
            "200": answer("Stored: applied (the status moved), ignored (a repeat, or after a"
                          " final status) or kept (a message not known yet: applied once it"
                          " is).", report_result),
            "400": answer("The body is not a status report."),
            "401": answer("Missing token, or not this vendor's token."),
        },
    }}
    messages_tag, keys_tag = ["Messages"], ["API keys"]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Herald API", "version": "1.0",
                 "description": "Send SMS and Viber messages; manage API keys; the Viber"
                                " providers' status webhook."},
        "tags": [
            {"name": "Messages", "description": "Sending, and the delivery report callbacks."},
            {"name": "API keys", "description": "A portal user's keys (token from /api/login)."},
            {"name": "Provider webhooks",
             "description": "Called by vendors (Viber providers) about the messages Herald"
                            " handed them; not for API users."},
        ],
        "paths": {
            "/api/send_sms": {
                "post": {"summary": "Send a message to up to 700 recipients", "tags": messages_tag,
                         "security": [{"apiKey": []}],
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"oneOf": [send_request,
                                                  {"type": "array", "items": send_request}]}}}},
                         "responses": send_answers, "callbacks": callbacks_doc},
                "get": {"summary": "Send a message (query parameters)", "tags": messages_tag,
                        "security": [{"apiKey": []}],
                        "parameters": query_params, "responses": send_answers,
                        "callbacks": callbacks_doc},
            },
            "/api/login": {"post": {
                "summary": "Exchange a portal user's e-mail and password for a token",
                "tags": keys_tag,
                "security": [{"basic": []}],
                "responses": {
                    "200": answer("A bearer token for the key endpoints.", {
                        "type": "object", "properties": {
                            "token": {"type": "string"}, "tokenType": {"type": "string"},
                            "expiresIn": {"type": "integer"}}}),
                    "401": answer("Wrong e-mail or password."),
                    "429": answer("Too many attempts.")}}},
            "/api/keys": {
                "get": {"summary": "The partner's API keys, newest first", "tags": keys_tag,
                        "security": jwt_only,
                        "responses": {"200": answer("The keys.", {"type": "object", "properties": {
                            "keys": {"type": "array", "items": key_schema}}}),
                            "401": answer("Missing or expired token.")}},
                "post": {"summary": "Create a key (returned once)", "tags": keys_tag,
                         "security": jwt_only,
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"type": "object", "required": ["name"], "properties": {
                                 "name": {"type": "string", "maxLength": 60},
                                 "callbackUrl": {"type": "string", "format": "uri"},
                                 "expiry": {"type": "string",
                                            "enum": list(apikeys.TTL_CHOICES)}}}}}},
                         "responses": {"201": answer("The new key.", key_schema),
                                       "400": answer("A field is wrong."),
                                       "409": answer("The name is taken."),
                                       "401": answer("Missing or expired token.")}},
            },
            "/api/keys/{id}/refresh": {"post": {
                "summary": "Start the key's validity period again", "tags": keys_tag,
                "security": jwt_only,
                "parameters": [key_id],
                "responses": {"200": answer("The key.", key_schema),
                              "404": answer("No such key."), "401": answer("Missing token.")}}},
            "/api/keys/{id}/signing-secret": {"post": {
                "summary": "Replace the key's callback signing secret (the new one is returned once)",
                "tags": keys_tag,
                "description": "The previous secret stops working at once, also for callbacks"
                               " still being retried.",
                "security": jwt_only, "parameters": [key_id],
                "responses": {"200": answer("The key with its new signingSecret.", key_schema),
                              "404": answer("No such key."), "401": answer("Missing token.")}}},
            "/api/keys/{id}": {"delete": {
                "summary": "Remove a key for good", "tags": keys_tag, "security": jwt_only,
                "parameters": [key_id],
                "responses": {"204": {"description": "Removed."}, "404": answer("No such key."),
                              "401": answer("Missing token.")}}},
            "/api/viber/status/{vendor_id}": viber_status,
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."},
                "token": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basic": {"type": "http", "scheme": "basic"},
                "vendorToken": {"type": "http", "scheme": "bearer",
                                "description": "A Viber vendor's own token (its HTTP token in"
                                               " Herald)."},
            },
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "field": {"type": "string"}}}},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def setup(app: web.Application) -> None:
    """Add the JSON API (and the pipeline it needs) to ``app``."""
    install(app)
    router = app.router
    router.add_post("/api/send_sms", send_sms)
    router.add_get("/api/send_sms", send_sms)
    router.add_post("/api/login", login)
    router.add_get("/api/keys", list_keys)
    router.add_post("/api/keys", create_key)
    router.add_post(r"/api/keys/{key_id:\d+}/refresh", refresh_key)
    router.add_post(r"/api/keys/{key_id:\d+}/signing-secret", rotate_signing_secret)
    router.add_delete(r"/api/keys/{key_id:\d+}", delete_key)
    router.add_get("/api/openapi.json", openapi)


__all__ = ["MAX_RECIPIENTS", "issue_token", "openapi_document", "parse_send", "setup"]
