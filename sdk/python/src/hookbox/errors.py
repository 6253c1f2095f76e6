"""Every error the SDK raises derives from :class:`HookboxError`.

::

    HookboxError
    ├── TransportError            the request did not get an answer (connection refused, reset, …)
    │   └── RequestTimeout        no complete answer within the timeout (also a builtin TimeoutError)
    ├── ResponseError             hookbox answered something that is not a Web API reply (404, 5xx, not JSON)
    ├── ApiError                  hookbox answered [false, {"msg": …}]: ``str(error)`` is that msg
    │   ├── AuthError             "Invalid Security Token", or the Web API is off (no -r)
    │   ├── NotFoundError         "Channel X doesn't exist", "User X doesn't exist"
    │   └── ThrottledError        HTTP 429 (too many wrong tokens from the caller's address): ``retry_after``
    └── WebhookError              a webhook request that cannot be trusted or read
        ├── SignatureError        no signature scheme verifies the request
        └── EventError            signed, but not a hookbox webhook body
"""

from __future__ import annotations

from typing import Optional


class HookboxError(Exception):
    """Base class of every error raised by this package."""


class TransportError(HookboxError):
    """The request failed before hookbox answered (connection refused or reset, DNS, TLS)."""


class RequestTimeout(TransportError, TimeoutError):
    """No complete answer within the call's timeout."""


class ResponseError(HookboxError):
    """hookbox answered, but not with a Web API reply (e.g. ``404 Not Found`` for an unknown
    method, a proxy's 502, a body that is not ``[bool, {…}]``)."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ApiError(HookboxError):
    """hookbox refused the call: ``[false, {"msg": "…"}]``. ``msg`` is the server's text."""

    def __init__(self, msg: str, *, method: str, status: int = 200) -> None:
        super().__init__(msg)
        self.msg = msg
        self.method = method
        self.status = status


class AuthError(ApiError):
    """The security token was refused, or the Web API is disabled (hookbox started without -r)."""


class NotFoundError(ApiError):
    """The channel or user the call names does not exist."""


class ThrottledError(ApiError):
    """HTTP 429: hookbox holds this address back (too many wrong tokens). ``retry_after`` is the
    number of seconds its ``Retry-After`` header asks to wait, if it sent one."""

    def __init__(self, msg: str, *, method: str, retry_after: Optional[float]) -> None:
        super().__init__(msg, method=method, status=429)
        self.retry_after = retry_after


class WebhookError(HookboxError):
    """A webhook request that cannot be trusted or read. Answer it with HTTP 400/403."""


class SignatureError(WebhookError):
    """No signature scheme verifies the request: it did not come from hookbox, or was altered."""


class EventError(WebhookError):
    """The request is signed but is not a webhook body this SDK understands."""


def api_error(msg: str, *, method: str) -> ApiError:
    """The :class:`ApiError` subclass for a refusal text of hookbox's."""
    if msg == "Invalid Security Token" or msg == "Invalid secret" or msg.startswith("Rest api is disabled"):
        return AuthError(msg, method=method)
    if msg.endswith(" doesn't exist"):
        return NotFoundError(msg, method=method)
    return ApiError(msg, method=method)
