"""Outgoing e-mail over SMTP (sign-up confirmation, password reset, 2FA secrets).

With no SMTP host configured (development), the message is written to the log
instead, so a fresh install still shows where the links would have gone.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from config.settings import Settings

log = logging.getLogger("herald.mail")

SMTP_TIMEOUT = 15.0  # seconds; a mail server that hangs must not hang a web request for long


class MailError(RuntimeError):
    """The SMTP server refused the message or could not be reached."""


def build_message(
    settings: Settings, to: str, subject: str, text: str, html: str | None = None,
    *, sender: str | None = None,
) -> EmailMessage:
    """The MIME message: plain text, plus an HTML alternative when given."""
    message = EmailMessage()
    message["From"] = sender or settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = (sender or settings.mail_from).rpartition("@")[2].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


async def send_mail(
    settings: Settings, to: str, subject: str, text: str, html: str | None = None,
    *, sender: str | None = None,
) -> None:
    """Send one message; raises :class:`MailError` when the server does not take it."""
    message = build_message(settings, to, subject, text, html, sender=sender)
    if not settings.smtp_host:
        log.info("event=mail_logged to=%s subject=%r\n%s", to, subject, text)
        return
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user or None,
            password=settings.smtp_password or None,
            start_tls=settings.smtp_tls,
            timeout=SMTP_TIMEOUT,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("event=mail_failed to=%s subject=%r error=%s", to, subject, exc)
        raise MailError(str(exc)) from exc
    log.info("event=mail_sent to=%s subject=%r", to, subject)
