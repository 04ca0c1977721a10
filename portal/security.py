"""Account security steps shared by the sign-in pages, Account Settings and the Admin Panel."""

from __future__ import annotations

from aiohttp import web

from gateway.base.app import DB
from portal import accounts, mails, twofactor
from portal.accounts import Account
from portal.i18n import N_
from portal.tenancy import Portal


def needs_second_factor(portal: Portal, user: Account) -> bool:
    """Ask for a one-time code when the portal requires it or the user turned it on."""
    return portal.require_2fa or user.totp_enabled


async def mail_new_totp_secret(app: web.Application, portal: Portal, user: Account) -> str:
    """Give the user a new authenticator secret, turned on, and e-mail it to them.

    Used when a portal requires 2FA (at e-mail confirmation, or at the first
    sign-in after the requirement was switched on); the Admin Panel may call
    it for every user of a portal when it switches the requirement on.
    """
    secret = twofactor.new_secret()
    await accounts.set_totp(app[DB], user.id, secret, True)
    await mails.send(
        app, portal, to=user.email, language=user.language, template="totp_secret",
        subject=N_("Your sign-in key for %(portal)s"),
        secret=twofactor.format_secret(secret), user=user,
    )
    return secret
