"""Typed webhook events (docs/webhooks.md "The eight hooks", "Polling").

Every event carries what the request's headers say about the browser behind it: ``cookies``
(the ``Cookie`` header parsed into a dict), ``cookie_header`` (verbatim) and ``real_ip``
(``X-Real-IP``, when a live connection is behind the call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Protocol, Tuple, Union
from urllib.parse import parse_qsl

from .errors import EventError

HOOKS = (
    "connect",
    "disconnect",
    "create_channel",
    "destroy_channel",
    "subscribe",
    "unsubscribe",
    "publish",
    "message",
)


@dataclass(frozen=True)
class Event:
    """What every webhook request carries besides its hook's fields."""

    action: str
    cookies: Dict[str, str] = field(default_factory=dict)
    cookie_header: str = ""
    real_ip: Optional[str] = None
    webhook_id: Optional[str] = None
    """The Standard Webhooks ``webhook-id`` header (with a ``whsec_`` secret), unique per request."""


@dataclass(frozen=True)
class ConnectEvent(Event):
    """A CONNECT frame: answer with :func:`hookbox.replies.connect` (the user's name) or a denial."""

    conn_id: str = ""
    payload: Any = None
    """The client's CONNECT payload, decoded from JSON (``None`` if it sent none)."""


@dataclass(frozen=True)
class DisconnectEvent(Event):
    """A user's last connection closed. The reply is ignored."""

    name: str = ""


@dataclass(frozen=True)
class CreateChannelEvent(Event):
    """An unknown channel is about to be created: answer with its options or a denial."""

    channel_name: str = ""


@dataclass(frozen=True)
class DestroyChannelEvent(Event):
    """The channel's last subscriber left: allow to remove it, deny to keep it."""

    channel_name: str = ""


@dataclass(frozen=True)
class SubscribeEvent(Event):
    channel_name: str = ""
    user: str = ""


@dataclass(frozen=True)
class UnsubscribeEvent(Event):
    channel_name: str = ""
    user: str = ""


@dataclass(frozen=True)
class PublishEvent(Event):
    channel_name: str = ""
    payload: Any = None
    """The published payload, decoded from JSON."""
    originator: Optional[str] = None
    """The publisher's name; ``None`` on anonymous channels and for Web API publishes without one."""


@dataclass(frozen=True)
class MessageEvent(Event):
    sender: str = ""
    recipient: str = ""
    recipient_exists: bool = False
    payload: Any = None


@dataclass(frozen=True)
class PollEvent(Event):
    """A polling request of a channel in ``persistent`` or ``once`` mode: ``form`` is its
    ``polling.form`` (``secret`` taken out). Answer with :func:`hookbox.replies.poll`."""

    form: Dict[str, Any] = field(default_factory=dict)


AnyEvent = Union[
    ConnectEvent,
    DisconnectEvent,
    CreateChannelEvent,
    DestroyChannelEvent,
    SubscribeEvent,
    UnsubscribeEvent,
    PublishEvent,
    MessageEvent,
    PollEvent,
]


def parse_cookies(header: str) -> Dict[str, str]:
    """A ``Cookie`` header as a dict; the first of repeated names wins, as in browsers' order."""
    cookies: Dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name.strip(), value)
    return cookies


class Headers(Protocol):
    """Any headers object with ``items()``: a dict, Django's ``request.headers``, Werkzeug's and
    Starlette's ``Headers``, ``http.client.HTTPMessage``."""

    def items(self) -> Iterable[Tuple[str, Any]]: ...


def lower_headers(headers: Headers) -> Dict[str, str]:
    """The headers as a dict with lowercased names."""
    return {str(k).lower(): str(v) for k, v in headers.items()}


def read_fields(body: bytes, headers: Headers) -> Dict[str, Any]:
    """The body's fields: a JSON object (``Content-Type: application/json``, from
    ``--webhook-format json``) with typed values, or a urlencoded form with text values."""
    content_type = lower_headers(headers).get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise EventError(f"webhook body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise EventError("webhook JSON body is not an object")
        return data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("webhook body is not UTF-8") from None
    fields: Dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


def _json_value(fields: Mapping[str, Any], key: str, is_form: bool) -> Any:
    """A payload field: JSON text in a form (decoded; text that is not JSON stays text), the
    value itself in a JSON body."""
    if key not in fields:
        return None
    value = fields[key]
    if not is_form:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _text(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None:
        raise EventError(f"webhook field {key} is missing")
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1")


def build_event(fields: Mapping[str, Any], headers: Headers, *, is_form: bool) -> AnyEvent:
    """The typed event for a webhook's fields (``secret`` ignored) and headers."""
    h = lower_headers(headers)
    cookie_header = h.get("cookie", "")
    common: Dict[str, Any] = {
        "cookies": parse_cookies(cookie_header),
        "cookie_header": cookie_header,
        "real_ip": h.get("x-real-ip") or None,
        "webhook_id": h.get("webhook-id") or None,
    }
    action = fields.get("action")
    if action is None:
        form = {k: v for k, v in fields.items() if k != "secret"}
        return PollEvent(action="poll", form=form, **common)
    action = str(action)
    common["action"] = action
    if action == "connect":
        return ConnectEvent(conn_id=_text(fields, "conn_id"), payload=_json_value(fields, "payload", is_form), **common)
    if action == "disconnect":
        return DisconnectEvent(name=_text(fields, "name"), **common)
    if action == "create_channel":
        return CreateChannelEvent(channel_name=_text(fields, "channel_name"), **common)
    if action == "destroy_channel":
        return DestroyChannelEvent(channel_name=_text(fields, "channel_name"), **common)
    if action == "subscribe":
        return SubscribeEvent(channel_name=_text(fields, "channel_name"), user=_text(fields, "user"), **common)
    if action == "unsubscribe":
        return UnsubscribeEvent(channel_name=_text(fields, "channel_name"), user=_text(fields, "user"), **common)
    if action == "publish":
        originator = fields.get("originator")
        return PublishEvent(
            channel_name=_text(fields, "channel_name"),
            payload=_json_value(fields, "payload", is_form),
            originator=None if originator is None else str(originator),
            **common,
        )
    if action == "message":
        return MessageEvent(
            sender=_text(fields, "sender"),
            recipient=_text(fields, "recipient"),
            recipient_exists=_bool(fields.get("recipient_exists", False)),
            payload=_json_value(fields, "payload", is_form),
            **common,
        )
    raise EventError(f"unknown webhook action {action!r}")
