"""The portal's e-mail: confirmation link, password reset link, 2FA secret.

Each message is written in the recipient's language from a text and an HTML
template under ``templates/mail/``, and sent from the portal's name (white
label) at Herald's sender address.
"""

from __future__ import annotations

import logging
from email.utils import formataddr, parseaddr

import aiohttp_jinja2
from aiohttp import web

from gateway.base.app import SETTINGS
from gateway.base.mail import send_mail
from portal import i18n
from portal.render import CATALOGS
from portal.tenancy import Portal, brand_color

log = logging.getLogger("herald.portal.mail")


async def send(
    app: web.Application, portal: Portal, *, to: str, language: str, template: str,
    subject: str, **context: object,
) -> None:
    """Render ``mail/<template>.txt`` and ``.html`` in ``language`` and send them."""
    env = aiohttp_jinja2.get_env(app)
    settings = app[SETTINGS]
    with i18n.use_language(app[CATALOGS], language):
        values = {"portal": portal, "lang": language, "brand_color": brand_color(portal), **context}
        text = env.get_template(f"mail/{template}.txt").render(values)
        html = env.get_template(f"mail/{template}.html").render(values)
        subject_text = i18n.gettext(subject, portal=portal.name)
    sender = formataddr((portal.name, parseaddr(settings.mail_from)[1] or settings.mail_from))
    await send_mail(settings, to, subject_text, text, html, sender=sender)
