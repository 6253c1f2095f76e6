"""What the Web API methods that return something return (docs/web-api.md "Methods")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping

from .options import ChannelOptions, UserOptions


@dataclass(frozen=True)
class ServerInfo:
    """``get_server_info``: the channels (in no particular order) and connection ids (in connect order)."""

    channels: List[str]
    connections: List[str]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServerInfo":
        return cls(channels=list(data.get("channels", [])), connections=list(data.get("connections", [])))


@dataclass(frozen=True)
class ChannelInfo:
    """``get_channel_info``: the channel's name, all its options (history, state and polling
    included) and its subscribers' names."""

    name: str
    options: ChannelOptions
    subscribers: List[str]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChannelInfo":
        return cls(
            name=data["name"],
            options=ChannelOptions.from_dict(data.get("options", {})),
            subscribers=list(data.get("subscribers", [])),
        )


@dataclass(frozen=True)
class UserInfo:
    """``get_user_info``: a connected user's channels, connection ids and options."""

    name: str
    channels: List[str]
    connections: List[str]
    options: UserOptions

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UserInfo":
        return cls(
            name=data["name"],
            channels=list(data.get("channels", [])),
            connections=list(data.get("connections", [])),
            options=UserOptions.from_dict(data.get("options", {})),
        )
