"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Every webhook request carries three headers:

- `webhook-id`: the event id, stable across retries, so receivers can de-duplicate;
- `webhook-timestamp`: Unix seconds of this attempt (receivers reject stale ones);
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
  the subscription secret, several space-separated signatures allowed.

Secrets are written `whsec_<base64 of 24 to 64 random bytes>`, as the specification's
reference libraries expect; the key is the decoded bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from termshift.errors import TermshiftError

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
DEFAULT_TOLERANCE = 5 * 60  # seconds; the specification's suggested replay window


class SecretError(TermshiftError, ValueError):
    """A malformed webhook secret; the message says why."""


class SignatureError(TermshiftError, ValueError):
    """A request whose signature headers do not verify; the message says why."""


def generate_secret() -> str:
    """A new random secret in the `whsec_<base64>` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; SecretError when it is not one."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise SecretError(
            "secret: must look like whsec_<base64> (leave it out to have one generated)"
        )
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("secret: the part after whsec_ is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise SecretError(
            f"secret: must decode to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, got {len(key)}"
        )
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one request."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed now unless `timestamp` is given."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """Check a received request; return its webhook-id or raise SignatureError.

    `headers` is looked up case-insensitively. This is what a Python receiver
    (and our test receiver) runs: constant-time comparison, timestamp window.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp_text or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise SignatureError(f"webhook-timestamp: not a whole number: {timestamp_text!r}") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"webhook-timestamp: {timestamp} is outside the {tolerance} s window")
    expected = sign(secret, message_id, timestamp, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return message_id
    raise SignatureError("webhook-signature: no signature matches")
