"""hookbox's server SDK: the Web API client, webhook verification and typed events, reply
helpers, and adapters for Django, Flask and FastAPI (``hookbox.django``, ``hookbox.flask``,
``hookbox.fastapi``, imported only when you import them).

Documentation: docs/sdk-python.md in the hookbox repository.
"""

from . import replies, requests, results, webhooks
from ._version import __version__
from .client import AsyncClient, Client, new_idempotency_key
from .errors import (
    ApiError,
    AuthError,
    EventError,
    HookboxError,
    NotFoundError,
    RequestTimeout,
    ResponseError,
    SignatureError,
    ThrottledError,
    TransportError,
    WebhookError,
)
from .events import (
    AnyEvent,
    ConnectEvent,
    CreateChannelEvent,
    DestroyChannelEvent,
    DisconnectEvent,
    Event,
    MessageEvent,
    PollEvent,
    PublishEvent,
    SubscribeEvent,
    UnsubscribeEvent,
)
from .hooks import Answer, Hooks
from .options import ChannelOptions, Polling, ServerConfig, UserOptions
from .replies import Reply
from .results import ChannelInfo, ServerInfo, UserInfo
from .webhooks import Verifier

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "new_idempotency_key",
    "HookboxError",
    "TransportError",
    "RequestTimeout",
    "ResponseError",
    "ApiError",
    "AuthError",
    "NotFoundError",
    "ThrottledError",
    "WebhookError",
    "SignatureError",
    "EventError",
    "Event",
    "AnyEvent",
    "ConnectEvent",
    "DisconnectEvent",
    "CreateChannelEvent",
    "DestroyChannelEvent",
    "SubscribeEvent",
    "UnsubscribeEvent",
    "PublishEvent",
    "MessageEvent",
    "PollEvent",
    "Hooks",
    "Answer",
    "Verifier",
    "Reply",
    "ChannelOptions",
    "Polling",
    "UserOptions",
    "ServerConfig",
    "ChannelInfo",
    "ServerInfo",
    "UserInfo",
    "replies",
    "requests",
    "results",
    "webhooks",
]
