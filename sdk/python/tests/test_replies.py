"""Every reply option of hookbox.replies, as the real hookbox acts on it, through hookbox.Hooks
behind the standard library's HTTP server (the "any other framework" path: Hooks.handle)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
from support import TOKEN, Hookbox, Rtjp

import hookbox
from hookbox import ChannelOptions, replies

SECRET = "replies secret"


def make_hooks() -> hookbox.Hooks:
    hooks = hookbox.Hooks(SECRET)

    @hooks.connect
    def connect(event: hookbox.ConnectEvent, request: Any) -> hookbox.Reply:
        name = event.payload["name"]
        return replies.connect(
            name,
            override_payload={"welcome": name},
            auto_subscribe=["lounge"],
            reflective=False,
            moderated_message=True,
            global_unsubscriptions=True,
            resume_ttl=120,
        ).with_cookie("greeted=1; Path=/")

    @hooks.create_channel
    def create_channel(event: hookbox.CreateChannelEvent, request: Any) -> hookbox.Reply:
        return replies.create_channel(ChannelOptions(history_size=5))

    @hooks.subscribe
    def subscribe(event: hookbox.SubscribeEvent, request: Any) -> hookbox.Reply:
        if event.channel_name == "main":
            return replies.subscribe(initial_data={"topic": "main"}, auto_subscribe=["side"])
        return replies.subscribe()

    @hooks.unsubscribe
    def unsubscribe(event: hookbox.UnsubscribeEvent, request: Any) -> hookbox.Reply:
        return replies.unsubscribe(auto_unsubscribe=["side"] if event.channel_name == "main" else None)

    @hooks.publish
    def publish(event: hookbox.PublishEvent, request: Any) -> hookbox.Reply:
        if event.payload == "just me":
            return replies.publish(only_to_sender=True)
        if event.payload == "secret":
            return replies.deny("No secrets here", auto_subscribe=["penalty"])
        return replies.publish(override_payload={"wrapped": event.payload})

    @hooks.message
    def message(event: hookbox.MessageEvent, request: Any) -> hookbox.Reply:
        recipient = "bob" if event.recipient == "robert" else None
        return replies.message(override_payload={"dm": event.payload}, override_recipient_name=recipient)

    return hooks


@pytest.fixture
def webapp_port() -> Iterator[int]:
    hooks = make_hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = hooks.handle(body, self.headers, self)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_reply_option(webapp_port: int, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]) -> None:
    server = start_hookbox("--cbport", str(webapp_port), "-s", SECRET)
    ann = rtjp(server)
    ann.send("CONNECT", {"cookie_string": "", "payload": json.dumps({"name": "ann"}), "resume": True})
    assert ann.recv() == ("SET_COOKIE", {"cookie": "greeted=1; Path=/"})
    name, connected = ann.recv()
    ticket = connected.pop("resume")
    assert (name, connected) == ("CONNECTED", {"name": "ann", "payload": {"welcome": "ann"}, "resume_ttl": 120})
    assert isinstance(ticket, str) and "." in ticket
    ann.expect("SUBSCRIBE", channel_name="lounge")  # auto_subscribe
    with hookbox.Client(server.url, TOKEN) as client:
        options = client.get_user_info("ann").options
    assert (options.reflective, options.moderated_message, options.global_unsubscriptions) == (False, True, True)

    bob = rtjp(server)
    bob.connect(payload={"name": "bob"})
    bob.send("SUBSCRIBE", {"channel_name": "main"})
    bob.expect("SUBSCRIBE", channel_name="main", user="bob")
    ann.send("SUBSCRIBE", {"channel_name": "main"})
    ann.expect("SUBSCRIBE", channel_name="side", user="ann")  # the subscribe reply's auto_subscribe, first
    assert ann.expect("SUBSCRIBE", channel_name="main", user="ann")["initial_data"] == {"topic": "main"}

    ann.send("PUBLISH", {"channel_name": "main", "payload": '"just me"'})
    assert ann.expect("PUBLISH", channel_name="main")["payload"] == "just me"
    ann.send("PUBLISH", {"channel_name": "main", "payload": '"hello"'})
    assert ann.expect("PUBLISH", channel_name="main")["payload"] == {"wrapped": "hello"}
    assert bob.expect("PUBLISH", channel_name="main")["payload"] == {"wrapped": "hello"}  # not "just me"

    ann.send("PUBLISH", {"channel_name": "main", "payload": '"secret"'})
    ann.expect("SUBSCRIBE", channel_name="penalty", user="ann")  # a denial's auto list runs too
    assert ann.expect("ERROR")["msg"] == "No secrets here"

    ann.send("MESSAGE", {"name": "robert", "payload": '"psst"'})
    frame = bob.expect("MESSAGE")
    assert (frame["sender"], frame["recipient"], frame["payload"]) == ("ann", "bob", {"dm": "psst"})

    ann.send("UNSUBSCRIBE", {"channel_name": "main"})
    ann.expect("UNSUBSCRIBE", channel_name="side", user="ann")  # auto_unsubscribe
    ann.expect("UNSUBSCRIBE", channel_name="main", user="ann")


def test_reply_bodies() -> None:
    assert replies.allow().body == b"[true,{}]"
    assert replies.deny().body == b"[false,{}]"
    assert replies.deny("nope").body == b'[false,{"error":"nope"}]'
    assert json.loads(replies.connect("a", override_payload=None).body) == [
        True,
        {"name": "a", "override_payload": None},
    ]
    assert json.loads(replies.publish(override_payload=None, only_to_sender=True).body) == [
        True,
        {"override_payload": None, "only_to_sender": True},
    ]
    assert json.loads(replies.poll({"p": 1}, ChannelOptions(history_size=2)).body) == [
        True,
        {"history_size": 2, "payload": {"p": 1}},
    ]
    reply = replies.subscribe(initial_data=[1]).with_cookie("k=v")
    assert reply.headers == {"Content-Type": "application/json", "Set-Cookie": "k=v"}
    assert reply.content_type == "application/json" and reply.status == 200
    with pytest.raises(ValueError):
        replies.connect("")


def test_handlers_must_return_a_reply() -> None:
    hooks = hookbox.Hooks(None)

    @hooks.publish
    def publish(event: hookbox.PublishEvent, request: Any) -> Any:
        return True

    with pytest.raises(TypeError, match="not a hookbox.Reply"):
        hooks.handle(b"action=publish&channel_name=c&payload=1", {}, None)
    with pytest.raises(ValueError, match="already registered"):
        hooks.publish(publish)
