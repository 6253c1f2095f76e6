"""Typed channel options, user options and server settings (docs/protocol.md "Channel options",
"User options"; docs/web-api.md "set_config").

A field left at ``None`` is not sent: hookbox keeps its current value (or its default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Mapping, Optional, Union

PollingMode = Literal["", "simple", "persistent", "once"]


def _set_fields(obj: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _set_fields(value)
        out[f.name] = value
    return out


def _known(cls: Any, data: Mapping[str, Any]) -> Dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Polling:
    """A channel's ``polling`` option: the channel fetches its own content (docs/webhooks.md
    "Polling"). Merged key by key into the current one."""

    mode: Optional[PollingMode] = None
    url: Optional[str] = None
    interval: Optional[float] = None
    form: Optional[Dict[str, Any]] = None
    originator: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return _set_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Polling":
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class ChannelOptions:
    """The 15 channel options. Used by ``create_channel`` / ``set_channel_options`` calls, the
    ``create_channel`` webhook reply and polling replies; returned by ``get_channel_info``."""

    reflective: Optional[bool] = None
    history_size: Optional[int] = None
    history: Optional[List[Any]] = None
    history_duration: Optional[int] = None
    history_publish_only: Optional[bool] = None
    moderated: Optional[bool] = None
    moderated_publish: Optional[bool] = None
    moderated_subscribe: Optional[bool] = None
    moderated_unsubscribe: Optional[bool] = None
    presenceful: Optional[bool] = None
    anonymous: Optional[bool] = None
    state: Optional[Dict[str, Any]] = None
    polling: Optional[Polling] = None
    server_presenceful: Optional[bool] = None
    server_user_presence: Optional[List[str]] = None

    def to_dict(self) -> Dict[str, Any]:
        """The options that are set, as JSON values."""
        return _set_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChannelOptions":
        known = _known(cls, data)
        if isinstance(known.get("polling"), Mapping):
            known["polling"] = Polling.from_dict(known["polling"])
        return cls(**known)


@dataclass(frozen=True)
class UserOptions:
    """The user options (docs/protocol.md "User options"): from the connect reply and
    ``set_user_options``; returned by ``get_user_info``."""

    reflective: Optional[bool] = None
    moderated_message: Optional[bool] = None
    per_connection_subscriptions: Optional[bool] = None
    global_unsubscriptions: Optional[bool] = None
    auto_subscribe: Optional[List[str]] = None

    def to_dict(self) -> Dict[str, Any]:
        return _set_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UserOptions":
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class ServerConfig:
    """What ``set_config`` can change on a running hookbox. An empty string turns
    ``cb_single_url`` and ``webhook_secret`` off. The keys that move webhooks need hookbox started
    with ``--allow-set-config-webhooks``."""

    cbhost: Optional[str] = None
    cbport: Optional[int] = None
    cbpath: Optional[str] = None
    cbhttps: Optional[bool] = None
    cbtrailingslash: Optional[bool] = None
    cbsendhookboxversion: Optional[bool] = None
    cb_single_url: Optional[str] = None
    cb_connect: Optional[str] = None
    cb_disconnect: Optional[str] = None
    cb_create_channel: Optional[str] = None
    cb_destroy_channel: Optional[str] = None
    cb_subscribe: Optional[str] = None
    cb_unsubscribe: Optional[str] = None
    cb_publish: Optional[str] = None
    cb_message: Optional[str] = None
    webhook_secret: Optional[str] = None
    api_security_token: Optional[str] = None
    admin_password: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return _set_fields(self)


OptionsLike = Union[ChannelOptions, Mapping[str, Any], None]
UserOptionsLike = Union[UserOptions, Mapping[str, Any], None]
ConfigLike = Union[ServerConfig, Mapping[str, Any], None]


def as_dict(options: Union[ChannelOptions, UserOptions, ServerConfig, Mapping[str, Any], None]) -> Dict[str, Any]:
    """Options given as one of the dataclasses above or as a plain mapping, as a dict."""
    if options is None:
        return {}
    if isinstance(options, (ChannelOptions, UserOptions, ServerConfig)):
        return options.to_dict()
    return {k: (v.to_dict() if isinstance(v, Polling) else v) for k, v in options.items()}
