"""The Web API clients: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), over the
same request types (:mod:`hookbox.requests`) and results (:mod:`hookbox.results`).

Every call has a timeout. Only ``publish``, ``publish_multi`` and ``message`` are retried, and
only with an idempotency key (generated for you when retries are on), because hookbox applies a
key once: a retry after a lost answer cannot publish twice. Every other call is tried once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
import uuid
from typing import Any, Optional, Sequence, Tuple, TypeVar, Union

import httpx

from ._version import __version__
from .errors import (
    ApiError,
    HookboxError,
    RequestTimeout,
    ResponseError,
    ThrottledError,
    TransportError,
    api_error,
)
from .options import ConfigLike, OptionsLike, UserOptionsLike
from .requests import (
    CreateChannel,
    DestroyChannel,
    Disconnect,
    GetChannelInfo,
    GetServerInfo,
    GetUserInfo,
    Message,
    Publish,
    PublishMulti,
    Request,
    SetChannelOptions,
    SetConfig,
    SetUserOptions,
    StateDeleteKey,
    StateSetKey,
    Subscribe,
    Unsubscribe,
)
from .results import ChannelInfo, ServerInfo, UserInfo

R = TypeVar("R")

USER_AGENT = f"hookbox-sdk-python/{__version__}"


def new_idempotency_key() -> str:
    """A fresh random key (128 bits, hex)."""
    return uuid.uuid4().hex


class _Settings:
    """What both clients share: where to send, the token, the timeout and retry policy, and how
    an HTTP answer becomes a result or an error."""

    def __init__(
        self,
        url: str,
        security_token: str,
        *,
        timeout: float,
        max_retries: int,
        retry_backoff: float,
        max_retry_wait: float,
        api_path: str,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base = url.rstrip("/") + "/" + api_path.strip("/") + "/"
        self.security_token = security_token
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_retry_wait = max_retry_wait

    def prepare(self, request: Request[R]) -> Tuple[Request[R], int]:
        """The request to send (with an idempotency key when it may be retried) and how many
        attempts it gets."""
        if not request.idempotent:
            return request, 1
        if request.idempotency_key is None and self.max_retries > 0:
            request = dataclasses.replace(request, idempotency_key=new_idempotency_key())  # type: ignore[type-var]
        if request.idempotency_key is None:
            return request, 1
        return request, 1 + self.max_retries

    def form(self, request: Request[Any]) -> dict[str, str]:
        return {**request.params(), "security_token": self.security_token}

    def url(self, request: Request[Any]) -> str:
        return self.base + request.method

    def headers(self) -> dict[str, str]:
        return {"User-Agent": USER_AGENT, "Accept": "application/json"}

    def read(self, request: Request[R], response: httpx.Response) -> R:
        """The result of ``response``, or the error it stands for."""
        method = request.method
        text = response.text
        if response.status_code == 429:
            raise ThrottledError(
                _msg(text) or "HTTP 429 Too Many Requests",
                method=method,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            raise ResponseError(
                f"/{method}: HTTP {response.status_code}: {text[:200]}", status=response.status_code, body=text
            )
        try:
            reply = json.loads(text)
        except ValueError:
            raise ResponseError(f"/{method}: not a JSON reply: {text[:200]}", status=200, body=text) from None
        if not (isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], dict)):
            raise ResponseError(f"/{method}: not a [success, {{…}}] reply: {text[:200]}", status=200, body=text)
        if reply[0] is True:
            return request.parse(reply[1])
        raise api_error(str(reply[1].get("msg", "")), method=method)

    def delay(self, error: HookboxError, attempt: int) -> Optional[float]:
        """Seconds to wait before trying again after ``error``, or None if it is not retried."""
        if isinstance(error, ThrottledError):
            wait = error.retry_after if error.retry_after is not None else self.backoff(attempt)
            return wait if wait <= self.max_retry_wait else None
        if isinstance(error, ApiError):
            return None
        if isinstance(error, ResponseError) and error.status < 500:
            return None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        base: float = self.retry_backoff * 2.0**attempt
        return min(base + random.uniform(0, self.retry_backoff), self.max_retry_wait)


def _msg(text: str) -> Optional[str]:
    try:
        reply = json.loads(text)
        return str(reply[1]["msg"])
    except (ValueError, LookupError, TypeError):
        return None


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _transport_error(exc: httpx.HTTPError, request: Request[Any]) -> HookboxError:
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(f"/{request.method}: no answer within the timeout ({type(exc).__name__})")
    return TransportError(f"/{request.method}: {type(exc).__name__}: {exc}")


class Client:
    """A blocking Web API client.

    ``url`` is hookbox's address (``http://127.0.0.1:8001``); calls go to ``<url>/web/<method>``
    (``api_path`` changes ``/web/``). ``security_token`` is hookbox's ``-r``. ``timeout`` (seconds)
    bounds every call, and each method takes its own ``timeout`` too. ``max_retries`` (default 2)
    is how often ``publish``, ``publish_multi`` and ``message`` are tried again after a timeout, a
    connection error, a 5xx or a 429, with the same idempotency key. Pass ``http_client`` to use
    your own ``httpx.Client`` (proxies, TLS settings); it is then yours to close.
    """

    def __init__(
        self,
        url: str,
        security_token: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        retry_backoff: float = 0.25,
        max_retry_wait: float = 10.0,
        api_path: str = "/web/",
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self._settings = _Settings(
            url,
            security_token,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            max_retry_wait=max_retry_wait,
            api_path=api_path,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(follow_redirects=False)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: Request[R], *, timeout: Optional[float] = None) -> R:
        """Sends any request of :mod:`hookbox.requests` and returns its result."""
        s = self._settings
        request, attempts = s.prepare(request)
        for attempt in range(attempts):
            try:
                response = self._http.post(
                    s.url(request), data=s.form(request), headers=s.headers(), timeout=timeout or s.timeout
                )
                return s.read(request, response)
            except httpx.HTTPError as exc:
                error: HookboxError = _transport_error(exc, request)
            except HookboxError as exc:
                error = exc
            wait = s.delay(error, attempt)
            if attempt + 1 >= attempts or wait is None:
                raise error
            time.sleep(wait)
        raise AssertionError("unreachable")

    def publish(
        self,
        channel_name: str,
        payload: Any = None,
        *,
        originator: Optional[str] = None,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.send(Publish(channel_name, payload, originator, send_hook, idempotency_key), timeout=timeout)

    def publish_multi(
        self,
        channel_names: Union[Sequence[str], str],
        payload: Any = None,
        *,
        originator: Optional[str] = None,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.send(PublishMulti(channel_names, payload, originator, send_hook, idempotency_key), timeout=timeout)

    def message(
        self,
        sender_name: str,
        recipient_name: str,
        payload: Any = None,
        *,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.send(Message(sender_name, recipient_name, payload, send_hook, idempotency_key), timeout=timeout)

    def subscribe(
        self, channel_name: str, name: str, *, send_hook: bool = False, timeout: Optional[float] = None
    ) -> None:
        self.send(Subscribe(channel_name, name, send_hook), timeout=timeout)

    def unsubscribe(
        self, channel_name: str, name: str, *, send_hook: bool = False, timeout: Optional[float] = None
    ) -> None:
        self.send(Unsubscribe(channel_name, name, send_hook), timeout=timeout)

    def create_channel(
        self,
        channel_name: str,
        options: OptionsLike = None,
        *,
        send_hook: bool = False,
        timeout: Optional[float] = None,
    ) -> None:
        self.send(CreateChannel(channel_name, options, send_hook), timeout=timeout)

    def destroy_channel(self, channel_name: str, *, send_hook: bool = False, timeout: Optional[float] = None) -> None:
        self.send(DestroyChannel(channel_name, send_hook), timeout=timeout)

    def set_channel_options(self, channel_name: str, options: OptionsLike, *, timeout: Optional[float] = None) -> None:
        self.send(SetChannelOptions(channel_name, options), timeout=timeout)

    def get_channel_info(self, channel_name: str, *, timeout: Optional[float] = None) -> ChannelInfo:
        return self.send(GetChannelInfo(channel_name), timeout=timeout)

    def state_set_key(self, channel_name: str, key: str, val: Any, *, timeout: Optional[float] = None) -> None:
        self.send(StateSetKey(channel_name, key, val), timeout=timeout)

    def state_delete_key(self, channel_name: str, key: str, *, timeout: Optional[float] = None) -> None:
        self.send(StateDeleteKey(channel_name, key), timeout=timeout)

    def set_user_options(self, user_name: str, options: UserOptionsLike, *, timeout: Optional[float] = None) -> None:
        self.send(SetUserOptions(user_name, options), timeout=timeout)

    def get_user_info(self, user_name: str, *, timeout: Optional[float] = None) -> UserInfo:
        return self.send(GetUserInfo(user_name), timeout=timeout)

    def set_config(self, config: ConfigLike, *, timeout: Optional[float] = None) -> None:
        self.send(SetConfig(config), timeout=timeout)

    def disconnect(self, name: str, *, timeout: Optional[float] = None) -> int:
        """Closes every connection of user ``name``; returns how many there were."""
        return self.send(Disconnect(name), timeout=timeout)

    def get_server_info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        return self.send(GetServerInfo(), timeout=timeout)


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same arguments, methods and errors, awaited."""

    def __init__(
        self,
        url: str,
        security_token: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        retry_backoff: float = 0.25,
        max_retry_wait: float = 10.0,
        api_path: str = "/web/",
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._settings = _Settings(
            url,
            security_token,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            max_retry_wait=max_retry_wait,
            api_path=api_path,
        )
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.AsyncClient(follow_redirects=False)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, request: Request[R], *, timeout: Optional[float] = None) -> R:
        """Sends any request of :mod:`hookbox.requests` and returns its result."""
        s = self._settings
        request, attempts = s.prepare(request)
        for attempt in range(attempts):
            try:
                response = await self._http.post(
                    s.url(request), data=s.form(request), headers=s.headers(), timeout=timeout or s.timeout
                )
                return s.read(request, response)
            except httpx.HTTPError as exc:
                error: HookboxError = _transport_error(exc, request)
            except HookboxError as exc:
                error = exc
            wait = s.delay(error, attempt)
            if attempt + 1 >= attempts or wait is None:
                raise error
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def publish(
        self,
        channel_name: str,
        payload: Any = None,
        *,
        originator: Optional[str] = None,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        await self.send(Publish(channel_name, payload, originator, send_hook, idempotency_key), timeout=timeout)

    async def publish_multi(
        self,
        channel_names: Union[Sequence[str], str],
        payload: Any = None,
        *,
        originator: Optional[str] = None,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        await self.send(PublishMulti(channel_names, payload, originator, send_hook, idempotency_key), timeout=timeout)

    async def message(
        self,
        sender_name: str,
        recipient_name: str,
        payload: Any = None,
        *,
        send_hook: bool = False,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> None:
        await self.send(Message(sender_name, recipient_name, payload, send_hook, idempotency_key), timeout=timeout)

    async def subscribe(
        self, channel_name: str, name: str, *, send_hook: bool = False, timeout: Optional[float] = None
    ) -> None:
        await self.send(Subscribe(channel_name, name, send_hook), timeout=timeout)

    async def unsubscribe(
        self, channel_name: str, name: str, *, send_hook: bool = False, timeout: Optional[float] = None
    ) -> None:
        await self.send(Unsubscribe(channel_name, name, send_hook), timeout=timeout)

    async def create_channel(
        self,
        channel_name: str,
        options: OptionsLike = None,
        *,
        send_hook: bool = False,
        timeout: Optional[float] = None,
    ) -> None:
        await self.send(CreateChannel(channel_name, options, send_hook), timeout=timeout)

    async def destroy_channel(
        self, channel_name: str, *, send_hook: bool = False, timeout: Optional[float] = None
    ) -> None:
        await self.send(DestroyChannel(channel_name, send_hook), timeout=timeout)

    async def set_channel_options(
        self, channel_name: str, options: OptionsLike, *, timeout: Optional[float] = None
    ) -> None:
        await self.send(SetChannelOptions(channel_name, options), timeout=timeout)

    async def get_channel_info(self, channel_name: str, *, timeout: Optional[float] = None) -> ChannelInfo:
        return await self.send(GetChannelInfo(channel_name), timeout=timeout)

    async def state_set_key(self, channel_name: str, key: str, val: Any, *, timeout: Optional[float] = None) -> None:
        await self.send(StateSetKey(channel_name, key, val), timeout=timeout)

    async def state_delete_key(self, channel_name: str, key: str, *, timeout: Optional[float] = None) -> None:
        await self.send(StateDeleteKey(channel_name, key), timeout=timeout)

    async def set_user_options(
        self, user_name: str, options: UserOptionsLike, *, timeout: Optional[float] = None
    ) -> None:
        await self.send(SetUserOptions(user_name, options), timeout=timeout)

    async def get_user_info(self, user_name: str, *, timeout: Optional[float] = None) -> UserInfo:
        return await self.send(GetUserInfo(user_name), timeout=timeout)

    async def set_config(self, config: ConfigLike, *, timeout: Optional[float] = None) -> None:
        await self.send(SetConfig(config), timeout=timeout)

    async def disconnect(self, name: str, *, timeout: Optional[float] = None) -> int:
        """Closes every connection of user ``name``; returns how many there were."""
        return await self.send(Disconnect(name), timeout=timeout)

    async def get_server_info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        return await self.send(GetServerInfo(), timeout=timeout)
