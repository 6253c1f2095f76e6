"""A few decorated functions become the web app's webhook endpoint.

::

    hooks = hookbox.Hooks(secret=WEBHOOK_SECRET)

    @hooks.connect
    def on_connect(event: hookbox.ConnectEvent, request) -> hookbox.Reply:
        ...

One endpoint serves every hook (hookbox's ``/hookbox/<action>`` paths, or ``--cb-single-url``):
the body's ``action`` picks the handler. Each handler gets the typed event and the framework's
own request object (so Django's ``request.user``, Flask's ``session`` work: the webhook carries
the browser's cookies) and returns a :class:`hookbox.Reply`. Handlers may be ``async def``.

A hook without a handler: ``disconnect``, ``destroy_channel`` and ``unsubscribe`` (which only
inform) are allowed; ``connect``, ``create_channel``, ``subscribe``, ``publish``, ``message`` and
polling requests (which decide) are denied, so nothing is let through by omission.

The adapters (:mod:`hookbox.django`, :mod:`hookbox.flask`, :mod:`hookbox.fastapi`) only move bytes
in and out; :meth:`Hooks.handle` and :meth:`Hooks.ahandle` do the work for any other framework.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Optional, TypeVar, Union

from . import replies
from .errors import EventError, SignatureError
from .events import (
    AnyEvent,
    ConnectEvent,
    CreateChannelEvent,
    DestroyChannelEvent,
    DisconnectEvent,
    Headers,
    MessageEvent,
    PollEvent,
    PublishEvent,
    SubscribeEvent,
    UnsubscribeEvent,
)
from .replies import Reply
from .webhooks import Verifier, parse_unverified

ReplyOrAwaitable = Union[Reply, Awaitable[Reply]]
F = TypeVar("F", bound=Callable[..., ReplyOrAwaitable])

INFORMATIONAL = frozenset({"disconnect", "destroy_channel", "unsubscribe"})


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one webhook request, for an adapter to send."""

    status: int
    body: bytes
    headers: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_reply(cls, reply: Reply) -> "Answer":
        return cls(reply.status, reply.body, reply.headers)

    @classmethod
    def refusal(cls, status: int, text: str) -> "Answer":
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


class Hooks:
    """The webhook handlers of one web app, and how requests reach them.

    ``secret`` is hookbox's ``--webhook-secret``: every request must verify
    (:class:`hookbox.webhooks.Verifier`), or it is refused with 403. ``secret=None`` turns checking
    off; only for development, with hookbox started without ``-s``.
    """

    def __init__(
        self,
        secret: Optional[str],
        *,
        accept_secret_field: bool = False,
        tolerance: float = 300.0,
    ) -> None:
        self._verifier = (
            Verifier(secret, accept_secret_field=accept_secret_field, tolerance=tolerance) if secret else None
        )
        self._handlers: Dict[str, Callable[[Any, Any], ReplyOrAwaitable]] = {}

    # Registration, one decorator per hook.

    def _register(self, action: str, fn: F) -> F:
        if action in self._handlers:
            raise ValueError(f"a {action} handler is already registered")
        self._handlers[action] = fn
        return fn

    def connect(
        self, fn: Callable[[ConnectEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[ConnectEvent, Any], ReplyOrAwaitable]:
        return self._register("connect", fn)

    def disconnect(
        self, fn: Callable[[DisconnectEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[DisconnectEvent, Any], ReplyOrAwaitable]:
        return self._register("disconnect", fn)

    def create_channel(
        self, fn: Callable[[CreateChannelEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[CreateChannelEvent, Any], ReplyOrAwaitable]:
        return self._register("create_channel", fn)

    def destroy_channel(
        self, fn: Callable[[DestroyChannelEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[DestroyChannelEvent, Any], ReplyOrAwaitable]:
        return self._register("destroy_channel", fn)

    def subscribe(
        self, fn: Callable[[SubscribeEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[SubscribeEvent, Any], ReplyOrAwaitable]:
        return self._register("subscribe", fn)

    def unsubscribe(
        self, fn: Callable[[UnsubscribeEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[UnsubscribeEvent, Any], ReplyOrAwaitable]:
        return self._register("unsubscribe", fn)

    def publish(
        self, fn: Callable[[PublishEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[PublishEvent, Any], ReplyOrAwaitable]:
        return self._register("publish", fn)

    def message(
        self, fn: Callable[[MessageEvent, Any], ReplyOrAwaitable]
    ) -> Callable[[MessageEvent, Any], ReplyOrAwaitable]:
        return self._register("message", fn)

    def poll(self, fn: Callable[[PollEvent, Any], ReplyOrAwaitable]) -> Callable[[PollEvent, Any], ReplyOrAwaitable]:
        """The handler of polling requests (channels whose ``polling.mode`` is persistent or once)."""
        return self._register("poll", fn)

    # Handling.

    def event(self, body: bytes, headers: Headers) -> AnyEvent:
        """The verified, typed event of a request (raises SignatureError / EventError)."""
        if self._verifier is None:
            return parse_unverified(body, headers)
        return self._verifier.parse(body, headers)

    def _start(
        self, body: bytes, headers: Headers
    ) -> Union[Answer, tuple[AnyEvent, Optional[Callable[[Any, Any], ReplyOrAwaitable]]]]:
        try:
            event = self.event(body, headers)
        except SignatureError as exc:
            return Answer.refusal(403, str(exc))
        except EventError as exc:
            return Answer.refusal(400, str(exc))
        return event, self._handlers.get(event.action)

    def handle(
        self,
        body: bytes,
        headers: Headers,
        request: Any,
        *,
        run_async: Optional[Callable[[Callable[[], Awaitable[Reply]]], Reply]] = None,
    ) -> Answer:
        """Verifies, parses and dispatches one request, synchronously. ``run_async`` runs an
        ``async def`` handler to completion (e.g. ``lambda f: asgiref.sync.async_to_sync(f)()``)."""
        started = self._start(body, headers)
        if isinstance(started, Answer):
            return started
        event, handler = started
        if handler is None:
            return Answer.from_reply(_default(event.action))
        result = handler(event, request)
        if inspect.isawaitable(result):
            awaitable = result
            if run_async is None:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                raise TypeError(f"the {event.action} handler is async: this adapter cannot run it")

            async def wait() -> Reply:
                return await awaitable

            result = run_async(wait)
        return Answer.from_reply(_checked(event.action, result))

    async def ahandle(
        self,
        body: bytes,
        headers: Headers,
        request: Any,
        *,
        run_sync: Optional[Callable[[Callable[[], ReplyOrAwaitable]], Awaitable[ReplyOrAwaitable]]] = None,
    ) -> Answer:
        """The same for asyncio frameworks: ``async def`` handlers are awaited, plain ones run
        through ``run_sync`` (e.g. a thread pool) or, without it, directly."""
        started = self._start(body, headers)
        if isinstance(started, Answer):
            return started
        event, handler = started
        if handler is None:
            return Answer.from_reply(_default(event.action))
        if inspect.iscoroutinefunction(handler) or run_sync is None:
            result = handler(event, request)
        else:
            bound = handler
            result = await run_sync(lambda: bound(event, request))
        if inspect.isawaitable(result):
            result = await result
        return Answer.from_reply(_checked(event.action, result))


def _default(action: str) -> Reply:
    if action in INFORMATIONAL:
        return replies.allow()
    return replies.deny(f"No {action} handler in the web application")


def _checked(action: str, result: Any) -> Reply:
    if not isinstance(result, Reply):
        raise TypeError(f"the {action} handler returned {type(result).__name__}, not a hookbox.Reply")
    return result
