"""Small secrets Herald must read back (not just check), sealed with the app secret.

A hash is enough for what Herald only verifies (API keys, passwords). A value
Herald must *use* — an API key's callback signing secret is an HMAC key — has
to be stored in a form Herald can open, yet one that a copy of the database
alone does not give away. It is sealed with AES-256-GCM (``cryptography``)
under a key derived with HKDF-SHA256 from the process secret key
(``Settings.secret_key``: ``HERALD_SECRET_KEY``, else the one kept in
``app_secrets``), with a label per purpose so one derived key never serves two. Only a secret key
kept outside the database (``HERALD_SECRET_KEY``) makes a database copy alone
useless; the one generated into ``app_secrets`` travels with the data.

Sealed layout: ``0x01`` (format version) ‖ 12-byte random nonce ‖ ciphertext ‖
16-byte tag. ``context`` is authenticated but not stored (GCM associated
data): pass something that ties the value to its row (e.g. the key hash), so a
sealed value copied onto another row does not open there.

Changing the secret key makes every sealed value unreadable: :func:`unseal`
raises :class:`Unreadable` and the value must be issued again.
"""

from __future__ import annotations

import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.errors import HeraldError

VERSION = b"\x01"
NONCE_BYTES = 12


class Unreadable(HeraldError):
    """A sealed value does not open: another secret key, another row, or damaged."""

    http_status = 500


@functools.lru_cache(maxsize=16)
def _cipher(app_secret: str, purpose: str) -> AESGCM:
    if not app_secret:
        raise ValueError("the secret key is empty: nothing to seal with")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=f"herald/{purpose}/v1".encode()).derive(app_secret.encode())
    return AESGCM(key)


def seal(app_secret: str, purpose: str, value: bytes, context: bytes = b"") -> bytes:
    """``value`` encrypted and authenticated for ``purpose`` (see the module doc)."""
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + _cipher(app_secret, purpose).encrypt(nonce, value, context)


def unseal(app_secret: str, purpose: str, sealed: bytes, context: bytes = b"") -> bytes:
    """The value :func:`seal` was given; :class:`Unreadable` if it does not open."""
    sealed = bytes(sealed)
    if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
        raise Unreadable("The sealed value has an unknown format.")
    nonce, body = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
    try:
        return _cipher(app_secret, purpose).decrypt(nonce, body, context)
    except InvalidTag:
        raise Unreadable("The sealed value does not open with this secret key.") from None
