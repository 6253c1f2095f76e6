"""Webhook replies, so nobody writes ``[true, {…}]`` by hand (docs/webhooks.md "The reply").

Each function returns a :class:`Reply`; ``reply.body`` is the JSON to answer with,
``reply.content_type`` its type, ``reply.headers`` both (plus ``Set-Cookie`` if set)::

    replies.connect("alice", auto_subscribe=["lobby"])   # [true, {"name": "alice", "auto_subscribe": ["lobby"]}]
    replies.create_channel(ChannelOptions(history_size=20, presenceful=True))
    replies.deny("Not in this room")                     # [false, {"error": "Not in this room"}]
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Dict, List, Optional, Sequence

from .options import OptionsLike, as_dict


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Any = _Unset.UNSET
"""Marks an argument that was not given (``None`` is a valid JSON payload)."""


@dataclass(frozen=True)
class Reply:
    """One webhook answer: ``[success, options]``, optionally with a ``Set-Cookie`` header that
    hookbox relays to the browser as a SET_COOKIE frame."""

    success: bool
    options: Dict[str, Any] = field(default_factory=dict)
    set_cookie: Optional[str] = None

    content_type: ClassVar[str] = "application/json"
    status: ClassVar[int] = 200

    @property
    def body(self) -> bytes:
        return json.dumps([self.success, self.options], separators=(",", ":")).encode("utf-8")

    @property
    def headers(self) -> Dict[str, str]:
        headers = {"Content-Type": self.content_type}
        if self.set_cookie is not None:
            headers["Set-Cookie"] = self.set_cookie
        return headers

    def with_cookie(self, set_cookie: str) -> "Reply":
        """The same reply with a ``Set-Cookie`` header (e.g. ``"theme=dark; Path=/"``)."""
        return replace(self, set_cookie=set_cookie)


def _auto(
    options: Dict[str, Any], auto_subscribe: Optional[Sequence[str]], auto_unsubscribe: Optional[Sequence[str]]
) -> Dict[str, Any]:
    if auto_subscribe is not None:
        options["auto_subscribe"] = list(auto_subscribe)
    if auto_unsubscribe is not None:
        options["auto_unsubscribe"] = list(auto_unsubscribe)
    return options


def allow() -> Reply:
    """``[true, {}]``: for any hook without options (disconnect, destroy_channel, unsubscribe, …)."""
    return Reply(True, {})


def deny(
    error: Optional[str] = None,
    *,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
) -> Reply:
    """``[false, {"error": error}]``: the client gets ``error`` as its ERROR ``msg`` (hookbox says
    ``Unauthorized`` without one). A publish denial's auto lists still run."""
    options: Dict[str, Any] = {} if error is None else {"error": error}
    return Reply(False, _auto(options, auto_subscribe, auto_unsubscribe))


def connect(
    name: str,
    *,
    override_payload: Any = UNSET,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
    reflective: Optional[bool] = None,
    moderated_message: Optional[bool] = None,
    per_connection_subscriptions: Optional[bool] = None,
    global_unsubscriptions: Optional[bool] = None,
    resume_ttl: Optional[int] = None,
) -> Reply:
    """Lets a connection in as user ``name``. ``override_payload`` replaces CONNECTED's payload;
    ``auto_subscribe`` / ``auto_unsubscribe`` are joined/left right after; ``resume_ttl``
    (seconds, at most 3600) gives a client that asks a resume ticket, to come back within that
    time without this webhook (docs/protocol.md "Resume tickets"); the rest are the user options
    (docs/protocol.md "User options")."""
    if not isinstance(name, str) or not name:
        raise ValueError("connect needs a non-empty user name")
    options: Dict[str, Any] = {"name": name}
    if override_payload is not UNSET:
        options["override_payload"] = override_payload
    _auto(options, auto_subscribe, auto_unsubscribe)
    user_options = {
        "reflective": reflective,
        "moderated_message": moderated_message,
        "per_connection_subscriptions": per_connection_subscriptions,
        "global_unsubscriptions": global_unsubscriptions,
    }
    options.update({k: v for k, v in user_options.items() if v is not None})
    if resume_ttl is not None:
        if isinstance(resume_ttl, bool) or not isinstance(resume_ttl, int) or resume_ttl < 1:
            raise ValueError("resume_ttl must be a positive number of seconds")
        options["resume_ttl"] = resume_ttl
    return Reply(True, options)


def create_channel(options: OptionsLike = None) -> Reply:
    """Lets the channel be created, with these channel options (hookbox's defaults otherwise;
    note ``moderated`` defaults to true)."""
    return Reply(True, as_dict(options))


def subscribe(
    *,
    initial_data: Any = UNSET,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
) -> Reply:
    """Lets the user join. A truthy ``initial_data`` is added to its own SUBSCRIBE frame."""
    options: Dict[str, Any] = {}
    if initial_data is not UNSET:
        options["initial_data"] = initial_data
    return Reply(True, _auto(options, auto_subscribe, auto_unsubscribe))


def unsubscribe(
    *,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
) -> Reply:
    """Lets the user leave."""
    return Reply(True, _auto({}, auto_subscribe, auto_unsubscribe))


def publish(
    *,
    override_payload: Any = UNSET,
    only_to_sender: bool = False,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
) -> Reply:
    """Lets the publish through, with ``override_payload`` instead of the client's, or only to
    the publisher's own connections."""
    options: Dict[str, Any] = {}
    if override_payload is not UNSET:
        options["override_payload"] = override_payload
    if only_to_sender:
        options["only_to_sender"] = True
    return Reply(True, _auto(options, auto_subscribe, auto_unsubscribe))


def message(
    *,
    override_payload: Any = UNSET,
    override_recipient_name: Optional[str] = None,
    auto_subscribe: Optional[Sequence[str]] = None,
    auto_unsubscribe: Optional[Sequence[str]] = None,
) -> Reply:
    """Lets the private message through, possibly changed or to someone else."""
    options: Dict[str, Any] = {}
    if override_payload is not UNSET:
        options["override_payload"] = override_payload
    if override_recipient_name is not None:
        options["override_recipient_name"] = override_recipient_name
    return Reply(True, _auto(options, auto_subscribe, auto_unsubscribe))


def poll(payload: Any = None, options: OptionsLike = None) -> Reply:
    """A polling channel's content: ``payload`` is published; ``options`` are applied to the
    channel (a new ``polling`` restarts the poller)."""
    return Reply(True, {**as_dict(options), "payload": payload})


__all__: List[str] = [
    "Reply",
    "UNSET",
    "allow",
    "deny",
    "connect",
    "create_channel",
    "subscribe",
    "unsubscribe",
    "publish",
    "message",
    "poll",
]
