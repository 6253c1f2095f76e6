"""One request type per Web API method (docs/web-api.md "Methods").

Each knows its method name, the form it sends (JSON values encoded for you, ``send_hook`` as
``1``) and how to read its result. :class:`hookbox.Client` and :class:`hookbox.AsyncClient` build
them from their keyword arguments; ``client.send(request)`` sends one you built yourself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Generic, Mapping, Optional, Sequence, TypeVar, Union

from .options import ConfigLike, OptionsLike, UserOptionsLike, as_dict
from .results import ChannelInfo, ServerInfo, UserInfo

R = TypeVar("R")


def to_json(value: Any) -> str:
    """A Python value as the JSON text the Web API expects."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _hook(send_hook: bool) -> Dict[str, str]:
    return {"send_hook": "1"} if send_hook else {}


class Request(Generic[R]):
    """A Web API call. ``method`` names it (``/web/<method>``). ``idempotent`` requests carry an
    ``idempotency_key``: hookbox applies a key once, so only they are retried."""

    method: ClassVar[str]
    idempotent: ClassVar[bool] = False
    idempotency_key: Optional[str] = None

    def params(self) -> Dict[str, str]:
        """The form fields, without the security token."""
        raise NotImplementedError

    def parse(self, data: Mapping[str, Any]) -> R:
        """The result, from the second element of a ``[true, {…}]`` reply."""
        raise NotImplementedError


class _NoResult(Request[None]):
    def parse(self, data: Mapping[str, Any]) -> None:
        return None


def _with_key(params: Dict[str, str], key: Optional[str]) -> Dict[str, str]:
    if key is not None:
        params["idempotency_key"] = key
    return params


@dataclass
class Publish(_NoResult):
    """Publishes ``payload`` to an existing channel; ``originator`` is the frame's ``user``."""

    method: ClassVar[str] = "publish"
    idempotent: ClassVar[bool] = True
    channel_name: str
    payload: Any = None
    originator: Optional[str] = None
    send_hook: bool = False
    idempotency_key: Optional[str] = None

    def params(self) -> Dict[str, str]:
        p = {"channel_name": self.channel_name, "payload": to_json(self.payload), **_hook(self.send_hook)}
        if self.originator is not None:
            p["originator"] = self.originator
        return _with_key(p, self.idempotency_key)


@dataclass
class PublishMulti(_NoResult):
    """Publishes one payload to several channels (missing ones are skipped)."""

    method: ClassVar[str] = "publish_multi"
    idempotent: ClassVar[bool] = True
    channel_names: Union[Sequence[str], str]
    payload: Any = None
    originator: Optional[str] = None
    send_hook: bool = False
    idempotency_key: Optional[str] = None

    def params(self) -> Dict[str, str]:
        names = self.channel_names if isinstance(self.channel_names, str) else ",".join(self.channel_names)
        p = {"channel_names": names, "payload": to_json(self.payload), **_hook(self.send_hook)}
        if self.originator is not None:
            p["originator"] = self.originator
        return _with_key(p, self.idempotency_key)


@dataclass
class Message(_NoResult):
    """A private message from a connected user."""

    method: ClassVar[str] = "message"
    idempotent: ClassVar[bool] = True
    sender_name: str
    recipient_name: str
    payload: Any = None
    send_hook: bool = False
    idempotency_key: Optional[str] = None

    def params(self) -> Dict[str, str]:
        p = {
            "sender_name": self.sender_name,
            "recipient_name": self.recipient_name,
            "payload": to_json(self.payload),
            **_hook(self.send_hook),
        }
        return _with_key(p, self.idempotency_key)


@dataclass
class Subscribe(_NoResult):
    """Subscribes a connected user, as if it had sent SUBSCRIBE."""

    method: ClassVar[str] = "subscribe"
    channel_name: str
    name: str
    send_hook: bool = False

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name, "name": self.name, **_hook(self.send_hook)}


@dataclass
class Unsubscribe(_NoResult):
    """Unsubscribes a user, as if it had sent UNSUBSCRIBE."""

    method: ClassVar[str] = "unsubscribe"
    channel_name: str
    name: str
    send_hook: bool = False

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name, "name": self.name, **_hook(self.send_hook)}


@dataclass
class CreateChannel(_NoResult):
    """Creates a channel with the given options."""

    method: ClassVar[str] = "create_channel"
    channel_name: str
    options: OptionsLike = None
    send_hook: bool = False

    def params(self) -> Dict[str, str]:
        p = {k: to_json(v) for k, v in as_dict(self.options).items()}
        return {**p, "channel_name": self.channel_name, **_hook(self.send_hook)}


@dataclass
class DestroyChannel(_NoResult):
    """Removes a channel; each subscriber gets its UNSUBSCRIBE."""

    method: ClassVar[str] = "destroy_channel"
    channel_name: str
    send_hook: bool = False

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name, **_hook(self.send_hook)}


@dataclass
class SetChannelOptions(_NoResult):
    """Merges options into an existing channel's."""

    method: ClassVar[str] = "set_channel_options"
    channel_name: str
    options: OptionsLike = None

    def params(self) -> Dict[str, str]:
        p = {k: to_json(v) for k, v in as_dict(self.options).items()}
        return {**p, "channel_name": self.channel_name}


@dataclass
class GetChannelInfo(Request[ChannelInfo]):
    method: ClassVar[str] = "get_channel_info"
    channel_name: str

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name}

    def parse(self, data: Mapping[str, Any]) -> ChannelInfo:
        return ChannelInfo.from_dict(data)


@dataclass
class StateSetKey(_NoResult):
    """Sets one key of a channel's state (subscribers get a STATE_UPDATE if it changed)."""

    method: ClassVar[str] = "state_set_key"
    channel_name: str
    key: str
    val: Any

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name, "key": self.key, "val": to_json(self.val)}


@dataclass
class StateDeleteKey(_NoResult):
    method: ClassVar[str] = "state_delete_key"
    channel_name: str
    key: str

    def params(self) -> Dict[str, str]:
        return {"channel_name": self.channel_name, "key": self.key}


@dataclass
class SetUserOptions(_NoResult):
    """Changes a connected user's options (until its next connect)."""

    method: ClassVar[str] = "set_user_options"
    user_name: str
    options: UserOptionsLike = None

    def params(self) -> Dict[str, str]:
        p = {k: to_json(v) for k, v in as_dict(self.options).items()}
        return {**p, "user_name": self.user_name}


@dataclass
class GetUserInfo(Request[UserInfo]):
    method: ClassVar[str] = "get_user_info"
    user_name: str

    def params(self) -> Dict[str, str]:
        return {"user_name": self.user_name}

    def parse(self, data: Mapping[str, Any]) -> UserInfo:
        return UserInfo.from_dict(data)


@dataclass
class SetConfig(_NoResult):
    """Changes webhook addressing and secrets on the running server."""

    method: ClassVar[str] = "set_config"
    config: ConfigLike = None

    def params(self) -> Dict[str, str]:
        return {k: to_json(v) for k, v in as_dict(self.config).items()}


@dataclass
class Disconnect(Request[int]):
    """Closes every connection of a user; the result is how many were closed."""

    method: ClassVar[str] = "disconnect"
    name: str

    def params(self) -> Dict[str, str]:
        return {"name": self.name}

    def parse(self, data: Mapping[str, Any]) -> int:
        return int(data.get("connections", 0))


@dataclass
class GetServerInfo(Request[ServerInfo]):
    method: ClassVar[str] = "get_server_info"

    def params(self) -> Dict[str, str]:
        return {}

    def parse(self, data: Mapping[str, Any]) -> ServerInfo:
        return ServerInfo.from_dict(data)
