"""Real webhooks from the real hookbox, verified and parsed by hookbox.webhooks.Verifier: both
signature schemes (and the official ``standardwebhooks`` package on hookbox's own signatures),
both body formats, the eight typed events, polling requests, and refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from datetime import datetime, timezone
from email.message import Message
from typing import Callable, Dict

import pytest
import standardwebhooks
from support import TOKEN, Hookbox, Rtjp, WebApp, Webhook

import hookbox
from hookbox import ChannelOptions, Polling, Verifier, replies
from hookbox.events import parse_cookies

PLAIN_SECRET = "plain secret ☃"


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def answer(webhook: Webhook) -> hookbox.Reply:
    if webhook.action == "connect":
        return replies.connect(parse_cookies(webhook.headers.get("Cookie", ""))["user"])
    if webhook.action is None:  # a polling request
        return replies.poll({"headline": "polled"})
    return replies.allow()


def only(headers: Message, *keep: str) -> Dict[str, str]:
    """The webhook's headers without the signature headers not in ``keep``."""
    signatures = {"x-hookbox-signature", "webhook-id", "webhook-timestamp", "webhook-signature"}
    wanted = {k.lower() for k in keep}
    return {k: v for k, v in headers.items() if k.lower() not in signatures or k.lower() in wanted}


FORMATS = {"form": [], "json": ["--webhook-format", "json"]}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_eight_hooks_as_typed_events(
    fmt: str,
    start_hookbox: Callable[..., Hookbox],
    start_webapp: Callable[..., WebApp],
    rtjp: Callable[..., Rtjp],
) -> None:
    app = start_webapp(answer)
    server = start_hookbox("--cbport", str(app.port), "-s", PLAIN_SECRET, *FORMATS[fmt])
    verifier = Verifier(PLAIN_SECRET)

    def event(action: str) -> hookbox.AnyEvent:
        webhook = app.next(action)
        expected_type = "application/json" if fmt == "json" else "application/x-www-form-urlencoded"
        assert webhook.headers["Content-Type"] == expected_type
        return verifier.parse(webhook.body, webhook.headers)

    ann = rtjp(server)
    ann.connect("user=ann; theme=dark", payload={"token": "t-1", "n": [1, 2]})
    connect = event("connect")
    assert isinstance(connect, hookbox.ConnectEvent)
    assert connect.cookies == {"user": "ann", "theme": "dark"}
    assert connect.cookie_header == "user=ann; theme=dark"
    assert connect.payload == {"token": "t-1", "n": [1, 2]}
    assert connect.real_ip == "127.0.0.1"
    assert len(connect.conn_id) == 32
    bob = rtjp(server)
    bob.connect("user=bob")
    assert event("connect").cookies == {"user": "bob"}

    ann.send("SUBSCRIBE", {"channel_name": "room"})
    create = event("create_channel")
    assert isinstance(create, hookbox.CreateChannelEvent) and create.channel_name == "room"
    assert create.cookies["user"] == "ann" and create.real_ip is None
    subscribe = event("subscribe")
    assert isinstance(subscribe, hookbox.SubscribeEvent)
    assert (subscribe.channel_name, subscribe.user, subscribe.real_ip) == ("room", "ann", "127.0.0.1")
    ann.expect("SUBSCRIBE", channel_name="room")

    ann.send("PUBLISH", {"channel_name": "room", "payload": '{"text": "h\u00e9llo"}'})
    publish = event("publish")
    assert isinstance(publish, hookbox.PublishEvent)
    assert (publish.channel_name, publish.originator, publish.payload) == ("room", "ann", {"text": "héllo"})
    ann.expect("PUBLISH", channel_name="room")

    ann.send("MESSAGE", {"name": "bob", "payload": '"psst"'})
    message = event("message")
    assert isinstance(message, hookbox.MessageEvent)
    assert (message.sender, message.recipient, message.recipient_exists, message.payload) == (
        "ann",
        "bob",
        True,
        "psst",
    )
    bob.expect("MESSAGE", payload="psst")
    ann.send("MESSAGE", {"name": "ghost", "payload": "[1]"})
    ghost = event("message")
    assert isinstance(ghost, hookbox.MessageEvent)
    assert (ghost.recipient, ghost.recipient_exists, ghost.payload) == ("ghost", False, [1])

    ann.send("UNSUBSCRIBE", {"channel_name": "room"})
    unsubscribe = event("unsubscribe")
    assert isinstance(unsubscribe, hookbox.UnsubscribeEvent)
    assert (unsubscribe.channel_name, unsubscribe.user) == ("room", "ann")
    destroy = event("destroy_channel")
    assert isinstance(destroy, hookbox.DestroyChannelEvent) and destroy.channel_name == "room"

    ann.close()
    disconnect = event("disconnect")
    assert isinstance(disconnect, hookbox.DisconnectEvent) and disconnect.name == "ann"
    assert disconnect.cookies == {"user": "ann", "theme": "dark"}


def test_hookbox_signature(
    start_hookbox: Callable[..., Hookbox], start_webapp: Callable[..., WebApp], rtjp: Callable[..., Rtjp]
) -> None:
    app = start_webapp(answer)
    server = start_hookbox("--cbport", str(app.port), "-s", PLAIN_SECRET)
    rtjp(server).connect("user=ann")
    webhook = app.next("connect")

    # The header is the HMAC-SHA256 of the exact body, keyed by the whole secret (docs/webhooks.md).
    expected = "sha256=" + hmac.new(PLAIN_SECRET.encode(), webhook.body, hashlib.sha256).hexdigest()
    assert webhook.headers["X-Hookbox-Signature"] == expected
    assert Verifier(PLAIN_SECRET).parse(webhook.body, webhook.headers).action == "connect"

    with pytest.raises(hookbox.SignatureError, match="X-Hookbox-Signature does not match"):
        Verifier(PLAIN_SECRET).parse(webhook.body.replace(b"null", b"true "), webhook.headers)
    with pytest.raises(hookbox.SignatureError):
        Verifier("another secret").parse(webhook.body, webhook.headers)
    with pytest.raises(hookbox.SignatureError, match="no signature"):
        Verifier(PLAIN_SECRET).parse(webhook.body, only(webhook.headers))

    # The original's form field `secret`: accepted only when asked for.
    unsigned = only(webhook.headers)
    assert Verifier(PLAIN_SECRET, accept_secret_field=True).parse(webhook.body, unsigned).action == "connect"
    with pytest.raises(hookbox.SignatureError):
        Verifier("another secret", accept_secret_field=True).parse(webhook.body, unsigned)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_standard_webhooks(
    fmt: str,
    start_hookbox: Callable[..., Hookbox],
    start_webapp: Callable[..., WebApp],
    rtjp: Callable[..., Rtjp],
) -> None:
    secret = whsec()
    app = start_webapp(answer)
    server = start_hookbox("--cbport", str(app.port), "-s", secret, *FORMATS[fmt])
    rtjp(server).connect("user=ann", payload={"k": "v"})
    webhook = app.next("connect")
    headers = webhook.headers
    assert headers["webhook-id"].startswith("msg_")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")

    # The official package verifies hookbox's real signature (verify() then parses the body as
    # JSON; a form body is signed alike, as its sign() shows).
    official = standardwebhooks.Webhook(secret)
    standard_only = only(headers, "webhook-id", "webhook-timestamp", "webhook-signature")
    if fmt == "json":
        parsed = official.verify(webhook.body, standard_only)
        assert parsed["action"] == "connect" and parsed["payload"] == {"k": "v"}
    else:
        sent = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
        signature = official.sign(headers["webhook-id"], sent, webhook.body.decode())
        assert signature in headers["webhook-signature"].split()

    # So does ours, with either scheme alone.
    event = Verifier(secret).parse(webhook.body, standard_only)
    assert isinstance(event, hookbox.ConnectEvent)
    assert event.payload == {"k": "v"}
    assert event.webhook_id == headers["webhook-id"]
    assert Verifier(secret).parse(webhook.body, only(headers, "x-hookbox-signature")).action == "connect"

    # An altered body, another key, or a timestamp beyond the tolerance: refused by both.
    altered = webhook.body[:-1] + bytes([webhook.body[-1] ^ 1])
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        official.verify(altered, standard_only)
    with pytest.raises(hookbox.SignatureError, match="webhook-signature does not match"):
        Verifier(secret).parse(altered, standard_only)
    with pytest.raises(hookbox.SignatureError):
        Verifier(whsec()).parse(webhook.body, standard_only)
    late = Verifier(secret, clock=lambda: time.time() + 600)
    with pytest.raises(hookbox.SignatureError, match="outside the tolerance"):
        late.parse(webhook.body, standard_only)


def test_polling_requests(
    start_hookbox: Callable[..., Hookbox], start_webapp: Callable[..., WebApp], rtjp: Callable[..., Rtjp]
) -> None:
    secret = whsec()
    app = start_webapp(answer)
    server = start_hookbox("--cbport", str(app.port), "-s", secret, "--webhook-format", "json")
    ann = rtjp(server)
    ann.connect("user=ann")
    app.forget()
    with hookbox.Client(server.url, TOKEN) as client:
        client.create_channel("feed", ChannelOptions(moderated=False))
        client.subscribe("feed", "ann")
        ann.expect("SUBSCRIBE", channel_name="feed")
        polling = Polling(
            mode="once", url=f"{app.url}/poll", interval=0.05, form={"feed": "news", "n": 2}, originator="wire"
        )
        client.set_channel_options("feed", ChannelOptions(polling=polling))
    webhook = app.next(None)
    assert webhook.path == "/poll" and webhook.action is None
    event = Verifier(secret).parse(webhook.body, webhook.headers)
    assert isinstance(event, hookbox.PollEvent)
    assert event.form == {"feed": "news", "n": "2"}  # polling POSTs stay urlencoded
    frame = ann.expect("PUBLISH", channel_name="feed")
    assert (frame["user"], frame["payload"]) == ("wire", {"headline": "polled"})


def test_bodies_that_are_not_webhooks() -> None:
    secret = "s"
    body = b"not=a&hook=1&action=teleport"
    headers = {"X-Hookbox-Signature": hookbox.webhooks.hookbox_signature(secret, body)}
    with pytest.raises(hookbox.EventError, match="unknown webhook action 'teleport'"):
        Verifier(secret).parse(body, headers)
    json_body = b"[1, 2]"
    json_headers = {
        "Content-Type": "application/json",
        "X-Hookbox-Signature": hookbox.webhooks.hookbox_signature(secret, json_body),
    }
    with pytest.raises(hookbox.EventError, match="not an object"):
        Verifier(secret).parse(json_body, json_headers)
    with pytest.raises(ValueError):
        Verifier("")
