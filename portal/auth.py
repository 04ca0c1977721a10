"""Who is asking: the request's portal and user, and the decorators that guard pages.

The portal middleware puts the :class:`~portal.tenancy.Portal` and, when the
session is signed in, the :class:`~portal.accounts.Account` on the request.
Handlers read them with :func:`portal_of` / :func:`user_of` and are guarded
with :func:`login_required` or :func:`require_role`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import Session, get_session

from config.errors import Forbidden
from gateway.base.app import DB, REDIS
from portal import accounts, csrf, sessions, throttle
from portal.accounts import Account
from portal.tenancy import Portal

PORTAL = web.RequestKey("herald_portal", Portal)
PORTAL_MATCHED = web.RequestKey("herald_portal_matched", bool)
USER = web.RequestKey("herald_user", Account)

SIGN_IN_PATH = "/signin"
# Session keys
UID = "uid"
GENERATION = "gen"
PENDING = "pending_2fa"  # {"uid": .., "at": .., "next": ..} between password and code
PENDING_TTL = 5 * 60

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def portal_of(request: web.Request) -> Portal:
    return request[PORTAL]


def user_of(request: web.Request) -> Account | None:
    return request.get(USER)


def signed_in(request: web.Request) -> Account:
    """The signed-in user (for handlers behind :func:`login_required`)."""
    return request[USER]


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go to after sign-in; anything pointing elsewhere becomes ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


def sign_in_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.rel_url.path_qs if request.method == "GET" else request.path
    return web.HTTPSeeOther(f"{SIGN_IN_PATH}?next={quote(target, safe='/')}")


def login_required(handler: Handler) -> Handler:
    """Send visitors who are not signed in to the sign-in page (and back afterwards)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if user_of(request) is None:
            raise sign_in_redirect(request)
        return await handler(request)

    return wrapper


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Allow only signed-in users holding one of ``roles`` (others get 403)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            user = user_of(request)
            if user is None:
                raise sign_in_redirect(request)
            if user.role not in roles:
                raise Forbidden("You do not have access to this page.")
            return await handler(request)

        return wrapper

    return decorate


def anonymous_only(handler: Handler) -> Handler:
    """Pages for signed-out visitors (sign in, sign up): signed-in users go home."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if user_of(request) is not None:
            raise web.HTTPSeeOther("/")
        return await handler(request)

    return wrapper


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def throttle_checks(request: web.Request, email: str) -> list[tuple[str, throttle.Limit]]:
    return [
        (throttle.account_key(portal_of(request).id, email), throttle.ACCOUNT_LIMIT),
        (throttle.address_key(client_address(request)), throttle.ADDRESS_LIMIT),
    ]


async def complete_sign_in(request: web.Request, user_id: int) -> Session:
    """Start the signed-in session: new id, current generation, new CSRF token."""
    session = await sessions.rotate(request)
    session[UID] = user_id
    session[GENERATION] = await sessions.generation(request.app[REDIS], user_id)
    csrf.token(session)
    await accounts.touch_login(request.app[DB], user_id)
    return session


async def begin_second_factor(request: web.Request, user_id: int, next_path: str) -> None:
    """Remember, in a fresh session, whose password was right while the code is asked for."""
    session = await sessions.rotate(request)
    session[PENDING] = {"uid": user_id, "at": int(time.time()), "next": next_path}
    csrf.token(session)


def pending_second_factor(session: Session) -> dict | None:
    """The half-finished sign-in waiting for a code, if still fresh."""
    pending = session.get(PENDING)
    if not pending or time.time() - pending.get("at", 0) > PENDING_TTL:
        return None
    return pending


async def sign_out(request: web.Request) -> Session:
    """End this session; returns the fresh anonymous one (for a goodbye message)."""
    return await sessions.rotate(request)


async def sign_out_everywhere(request: web.Request, user_id: int, *, keep_current: bool) -> None:
    """End all the user's sessions; with ``keep_current`` this one carries on."""
    generation = await sessions.bump_generation(request.app[REDIS], user_id)
    session = await get_session(request)
    if keep_current and session.get(UID) == user_id:
        session[GENERATION] = generation
    elif session.get(UID) == user_id:
        await sessions.rotate(request)
