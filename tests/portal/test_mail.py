"""gateway.base.mail over a real SMTP exchange (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import logging
import socket

import pytest

from gateway.base.mail import MailError, send_mail
from tests.portal.conftest import html_of, text_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_send_text_and_html(settings, mailbox):
    settings = settings.replace(smtp_host="127.0.0.1", smtp_port=mailbox.port, mail_from="noreply@herald.test")
    await send_mail(settings, "ana@example.test", "Grüße ✓", "plain body ✓", "<p>html body ✓</p>")
    message = mailbox.last_to("ana@example.test")
    assert message["Subject"] == "Grüße ✓"
    assert message["From"] == "noreply@herald.test"
    assert message["Message-ID"].endswith("@herald.test>")
    assert text_of(message).strip() == "plain body ✓"
    assert html_of(message).strip() == "<p>html body ✓</p>"


async def test_without_smtp_host_the_mail_is_logged(settings, caplog):
    with caplog.at_level(logging.INFO, logger="herald.mail"):
        await send_mail(settings.replace(smtp_host=""), "ana@example.test", "Hello", "the body")
    assert "the body" in caplog.text and "ana@example.test" in caplog.text


async def test_unreachable_server_raises_mail_error(settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MailError):
        await send_mail(settings.replace(smtp_host="127.0.0.1", smtp_port=port), "a@b.test", "s", "t")
