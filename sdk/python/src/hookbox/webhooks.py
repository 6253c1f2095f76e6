"""Verify a webhook request, then parse it into a typed event, in one call::

    verifier = hookbox.webhooks.Verifier(WEBHOOK_SECRET)
    event = verifier.parse(request_body_bytes, request_headers)   # raises SignatureError

Two signature schemes, either of which verifies a request (compared in constant time):

- ``X-Hookbox-Signature: sha256=<hex>``: HMAC-SHA256 of the exact body bytes, keyed by the whole
  ``--webhook-secret`` string (UTF-8).
- Standard Webhooks (standardwebhooks.com), when the secret has the form ``whsec_<base64>``:
  ``webhook-signature: v1,<base64>`` (a space-separated list) of
  HMAC-SHA256(base64decode(secret without ``whsec_``), ``"{webhook-id}.{webhook-timestamp}.{body}"``),
  with ``webhook-timestamp`` within ``tolerance`` (5 minutes) of now.

The legacy form field ``secret`` (what HookBox 0.3.4a1 apps compare) is accepted only with
``accept_secret_field=True``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Callable, Dict, List, Mapping, Optional

from .errors import EventError, SignatureError
from .events import AnyEvent, Headers, build_event, lower_headers, read_fields

SIGNATURE_HEADER = "X-Hookbox-Signature"
STANDARD_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300.0


def hookbox_signature(secret: str, body: bytes) -> str:
    """The ``X-Hookbox-Signature`` value hookbox sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_key(secret: str) -> Optional[bytes]:
    """The Standard Webhooks signing key of a ``whsec_<base64>`` secret, else None."""
    if not secret.startswith(STANDARD_PREFIX):
        return None
    encoded = secret[len(STANDARD_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def standard_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The ``v1,<base64>`` Standard Webhooks signature of one request."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode("utf-8") + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class Verifier:
    """Checks that a webhook request came from the hookbox holding ``secret``, and parses it.

    ``tolerance`` (seconds) bounds the age of a Standard Webhooks timestamp, either way.
    ``accept_secret_field`` also accepts a request whose form field ``secret`` equals the secret
    (unsigned, as HookBox 0.3.4a1 sent it); off by default, since the field can be replayed.
    """

    def __init__(
        self,
        secret: str,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        accept_secret_field: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the webhook secret must not be empty")
        self._secret = secret
        self._standard_key = standard_key(secret)
        self._tolerance = tolerance
        self._accept_secret_field = accept_secret_field
        self._clock = clock

    def verify(self, body: bytes, headers: Headers) -> None:
        """Returns if a scheme verifies the request, else raises :class:`SignatureError`."""
        self._verify(body, lower_headers(headers))

    def parse(self, body: bytes, headers: Headers) -> AnyEvent:
        """Verifies the request, then returns its typed event. Raises :class:`SignatureError`
        (not from hookbox, or altered) or :class:`hookbox.EventError` (not a webhook body)."""
        h = lower_headers(headers)
        self._verify(body, h)
        return build_event(read_fields(body, h), h, is_form=not _is_json(h))

    def _verify(self, body: bytes, headers: Dict[str, str]) -> None:
        reasons: List[str] = []
        if SIGNATURE_HEADER.lower() in headers:
            expected = hookbox_signature(self._secret, body)
            if hmac.compare_digest(headers[SIGNATURE_HEADER.lower()].encode(), expected.encode()):
                return
            reasons.append(f"{SIGNATURE_HEADER} does not match")
        if self._standard_key is not None and "webhook-signature" in headers:
            reason = self._standard(body, headers)
            if reason is None:
                return
            reasons.append(reason)
        if self._accept_secret_field:
            try:
                given = read_fields(body, headers).get("secret")
            except EventError:
                given = None
            if isinstance(given, str) and hmac.compare_digest(given.encode(), self._secret.encode()):
                return
            reasons.append("the secret field does not match")
        raise SignatureError("webhook not verified: " + ("; ".join(reasons) or "no signature"))

    def _standard(self, body: bytes, headers: Dict[str, str]) -> Optional[str]:
        """None if the Standard Webhooks headers verify, else why not."""
        assert self._standard_key is not None
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        if not webhook_id or not timestamp:
            return "webhook-id or webhook-timestamp missing"
        try:
            sent = int(timestamp)
        except ValueError:
            return "webhook-timestamp is not a number"
        if abs(self._clock() - sent) > self._tolerance:
            return "webhook-timestamp outside the tolerance"
        expected = standard_signature(self._standard_key, webhook_id, timestamp, body).encode()
        for candidate in headers["webhook-signature"].split():
            if hmac.compare_digest(candidate.encode(), expected):
                return None
        return "webhook-signature does not match"


def _is_json(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def parse_unverified(body: bytes, headers: Headers) -> AnyEvent:
    """The typed event of a webhook request, without checking who sent it. For hookbox started
    without ``--webhook-secret`` (development only)."""
    h = lower_headers(headers)
    return build_event(read_fields(body, h), h, is_form=not _is_json(h))
