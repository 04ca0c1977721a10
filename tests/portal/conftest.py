"""Portal fixtures: a real SMTP server, the app on a fresh database, signed-in clients."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage

import asyncpg
import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP

from accounts.users import hash_password
from config.settings import Settings
from gateway.base.app import _init_connection
from gateway.runtime.main import build_app

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')
PASSWORD = "correct-horse-battery"


class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def last_to(self, address: str) -> EmailMessage:
        found = self.to(address)
        assert found, f"no mail to {address}; got {[m['To'] for m in self.messages]}"
        return found[-1]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def path_of(link: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(link).path


def link_in(message: EmailMessage, path: str) -> str:
    """The first link in the plain text whose path starts with ``path``."""
    match = re.search(r"https?://\S+" + re.escape(path) + r"\S*", text_of(message))
    assert match, f"no {path} link in:\n{text_of(message)}"
    return match.group(0)


@pytest_asyncio.fixture(loop_scope="session")
async def mailbox() -> AsyncIterator[Mailbox]:
    """A real SMTP server on 127.0.0.1 (ephemeral port) in the test's event loop."""
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(box, hostname="mail.test"), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()


@pytest.fixture
def portal_settings(settings: Settings, mailbox: Mailbox) -> Settings:
    return settings.replace(smtp_host="127.0.0.1", smtp_port=mailbox.port,
                            mail_from="noreply@herald.test")


@pytest_asyncio.fixture(loop_scope="session")
async def app(portal_settings: Settings, redis):
    """The full web app; Redis is flushed first (sessions, throttles and CAPTCHAs start empty)."""
    return build_app(portal_settings)


@pytest_asyncio.fixture(loop_scope="session")
async def client(app, make_client):
    return await make_client(app)


@pytest_asyncio.fixture(loop_scope="session")
async def db(portal_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the app's database (committed writes, for setting up tests)."""
    conn = await asyncpg.connect(portal_settings.database_url)
    await _init_connection(conn)
    yield conn
    await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def default_portal(db: asyncpg.Connection) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM portals WHERE is_default")


async def make_client_user(
    db: asyncpg.Connection, email_address: str, *, password: str = PASSWORD,
    company: str = "Acme Ltd", portal_id: int | None = None, status: str = "active",
    first_name: str = "Ada", last_name: str = "Lovelace", totp_secret: str | None = None,
    totp_enabled: bool = False, supervisor_email: str = "",
) -> tuple[int, int]:
    """A client partner under the portal's owner and its user; returns (partner_id, user_id)."""
    portal = await db.fetchrow(
        "SELECT id, owner_partner_id FROM portals WHERE id = $1 OR ($1::bigint IS NULL AND is_default)",
        portal_id,
    )
    partner_id = await db.fetchval(
        """INSERT INTO partners (parent_id, kind, name, portal_id, company_name, supervisor_email)
           VALUES ($1, 'client', $2, $3, $2, $4) RETURNING id""",
        portal["owner_partner_id"], company, portal["id"], supervisor_email,
    )
    user_id = await db.fetchval(
        """INSERT INTO users (partner_id, portal_id, email, password_hash, first_name, last_name,
                              role, status, totp_secret, totp_enabled, email_confirmed_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'user', $7, $8, $9, now()) RETURNING id""",
        partner_id, portal["id"], email_address, hash_password(password), first_name, last_name,
        status, totp_secret, totp_enabled,
    )
    return partner_id, user_id


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def page(client, path: str, **kwargs) -> tuple[int, str]:
    response = await client.get(path, allow_redirects=False, **kwargs)
    return response.status, await response.text()


async def token_for(client, path: str = "/signin") -> str:
    """A CSRF token of the client's session (read from a page with a form)."""
    response = await client.get(path)
    return csrf_token(await response.text())


async def post(client, path: str, data: dict | list, *, token: str | None = None,
               csrf: bool = True, **kwargs):
    """POST a form the way a browser does, with the session's CSRF token unless told not to."""
    items = list(data.items()) if isinstance(data, dict) else list(data)
    if csrf:
        items.append(("_csrf", token if token is not None else await token_for(client)))
    return await client.post(path, data=items, allow_redirects=False, **kwargs)


async def sign_in(client, email_address: str, password: str = PASSWORD) -> None:
    response = await post(client, "/signin", {"email": email_address, "password": password})
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"


@pytest_asyncio.fixture(loop_scope="session")
async def user(db) -> dict:
    """An active client user (not signed in)."""
    partner_id, user_id = await make_client_user(db, "ada@client.test")
    return {"email": "ada@client.test", "partner_id": partner_id, "id": user_id}


@pytest_asyncio.fixture(loop_scope="session")
async def signed_in(client, user) -> dict:
    """``client`` signed in as ``user``."""
    await sign_in(client, user["email"])
    return user
