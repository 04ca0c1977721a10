"""The portal's fixtures (app on a fresh database, SMTP, signed-in helpers) for the shortener's tests."""

from tests.portal.conftest import (  # noqa: F401  (fixtures)
    app,
    client,
    db,
    default_portal,
    mailbox,
    portal_settings,
)
