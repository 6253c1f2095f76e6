"""Every Web API method of hookbox.Client and hookbox.AsyncClient against the real binary, with
connected RTJP clients showing what each call did, and errors raised with the server's text."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
import pytest
import websockets.exceptions
from support import TOKEN, Hookbox, Rtjp, WebApp, Webhook

import hookbox
from hookbox import ChannelOptions, Polling, ServerConfig, UserOptions, replies
from hookbox.events import parse_cookies


def answer(webhook: Webhook) -> hookbox.Reply:
    """Users are named by their ``user`` cookie; channels are unmoderated."""
    if webhook.action == "connect":
        return replies.connect(parse_cookies(webhook.headers.get("Cookie", ""))["user"])
    if webhook.action == "create_channel":
        return replies.create_channel(ChannelOptions(moderated=False))
    return replies.allow()


@dataclass
class Setup:
    server: Hookbox
    app: WebApp
    client: hookbox.Client
    alice: Rtjp
    bob: Rtjp


@pytest.fixture
def setup(
    start_hookbox: Callable[..., Hookbox], start_webapp: Callable[..., WebApp], rtjp: Callable[..., Rtjp]
) -> Iterator[Setup]:
    app = start_webapp(answer)
    server = start_hookbox("--cbport", str(app.port))
    alice = rtjp(server)
    assert alice.connect("user=alice")["name"] == "alice"
    bob = rtjp(server)
    assert bob.connect("user=bob")["name"] == "bob"
    app.forget()
    with hookbox.Client(server.url, TOKEN, timeout=5) as client:
        yield Setup(server, app, client, alice, bob)


def test_channels_publish_and_state(setup: Setup) -> None:
    client, alice = setup.client, setup.alice
    client.create_channel("scores", ChannelOptions(history_size=10, presenceful=True, state={"period": 1}))
    with pytest.raises(hookbox.ApiError, match="^Channel scores already exists$") as refused:
        client.create_channel("scores")
    assert refused.value.method == "create_channel"

    client.subscribe("scores", "alice")
    own = alice.expect("SUBSCRIBE", channel_name="scores", user="alice")
    assert own["state"] == {"period": 1}
    with pytest.raises(hookbox.NotFoundError, match="^User zed doesn't exist$"):
        client.subscribe("scores", "zed")

    client.publish("scores", {"home": 2, "text": "héllo"}, originator="desk")
    frame = alice.expect("PUBLISH", channel_name="scores")
    assert frame["payload"] == {"home": 2, "text": "héllo"}
    assert frame["user"] == "desk"
    with pytest.raises(hookbox.NotFoundError, match="^Channel nowhere doesn't exist$"):
        client.publish("nowhere", 1)

    client.create_channel("other")
    client.subscribe("other", "alice")
    client.publish_multi(["scores", "other", "missing"], "both")
    assert alice.expect("PUBLISH", channel_name="scores")["payload"] == "both"
    assert alice.expect("PUBLISH", channel_name="other")["payload"] == "both"

    client.state_set_key("scores", "period", "second half")
    assert alice.expect("STATE_UPDATE")["updates"] == {"period": "second half"}
    client.state_delete_key("scores", "period")
    assert alice.expect("STATE_UPDATE")["deletes"] == ["period"]

    client.set_channel_options("scores", ChannelOptions(history_size=3, polling=Polling(interval=2.5)))
    info = client.get_channel_info("scores")
    assert info.name == "scores"
    assert info.subscribers == ["alice"]
    assert info.options.history_size == 3
    assert info.options.presenceful is True
    assert info.options.polling is not None and info.options.polling.interval == 2.5
    assert [entry[0] for entry in info.options.history or []][-1] == "PUBLISH"
    with pytest.raises(hookbox.ApiError, match="^Invalid type for history_size \\(should be int\\)$"):
        client.set_channel_options("scores", {"history_size": "many"})

    server_info = client.get_server_info()
    assert set(server_info.channels) == {"scores", "other"}
    assert len(server_info.connections) == 2

    client.unsubscribe("other", "alice")
    alice.expect("UNSUBSCRIBE", channel_name="other", user="alice")
    client.destroy_channel("scores")
    alice.expect("UNSUBSCRIBE", channel_name="scores", user="alice")
    with pytest.raises(hookbox.NotFoundError, match="^Channel scores doesn't exist$"):
        client.get_channel_info("scores")


def test_users_messages_and_disconnect(setup: Setup) -> None:
    client, bob = setup.client, setup.bob
    client.message("alice", "bob", {"text": "psst"})
    frame = bob.expect("MESSAGE")
    assert (frame["sender"], frame["recipient"], frame["payload"]) == ("alice", "bob", {"text": "psst"})
    with pytest.raises(hookbox.ApiError, match="^Invalid user name$"):
        client.message("alice", "nobody", 1)

    client.set_user_options("alice", UserOptions(reflective=False, per_connection_subscriptions=True))
    info = client.get_user_info("alice")
    assert info.name == "alice"
    assert info.options.reflective is False
    assert info.options.per_connection_subscriptions is True
    assert len(info.connections) == 1
    with pytest.raises(hookbox.ApiError, match="^Invalid keyword argument colour$"):
        client.set_user_options("alice", {"colour": "red"})
    with pytest.raises(hookbox.NotFoundError, match="^User zed doesn't exist$"):
        client.get_user_info("zed")

    assert client.disconnect("bob") == 1
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        bob.expect("NEVER")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    setup.app.next("disconnect")
    with pytest.raises(hookbox.NotFoundError, match="^User bob doesn't exist$"):
        client.disconnect("bob")


def test_set_config(setup: Setup) -> None:
    client = setup.client
    client.set_config(ServerConfig(webhook_secret="new-secret", cbsendhookboxversion=True))
    other = Rtjp(setup.server)
    try:
        other.connect("user=carol")
        webhook = setup.app.next("connect")
        assert webhook.fields["secret"] == "new-secret"
        assert webhook.headers["X-Hookbox-Version"] == "0.3.4a1"
        assert hookbox.Verifier("new-secret").parse(webhook.body, webhook.headers).action == "connect"
    finally:
        other.close()
    with pytest.raises(hookbox.ApiError, match="^set_config may not change where webhooks go \\(cbhost\\)"):
        client.set_config(ServerConfig(cbhost="elsewhere.example"))


def test_refusals_carry_the_server_text(setup: Setup) -> None:
    with hookbox.Client(setup.server.url, "wrong") as wrong:
        with pytest.raises(hookbox.AuthError, match="^Invalid Security Token$"):
            wrong.get_server_info()
    with hookbox.Client(setup.server.url, TOKEN, api_path="/nowhere/") as lost:
        with pytest.raises(hookbox.ResponseError) as not_found:
            lost.get_server_info()
        assert not_found.value.status == 404


def test_api_disabled(start_hookbox: Callable[..., Hookbox]) -> None:
    server = start_hookbox(token=None)
    with hookbox.Client(server.url, "anything") as client:
        with pytest.raises(hookbox.AuthError, match="^Rest api is disabled by configuration"):
            client.get_server_info()


def test_throttled_after_wrong_tokens(start_hookbox: Callable[..., Hookbox]) -> None:
    """Wrong tokens from one address (not the web app's own) are answered 429 with Retry-After;
    the address is a visitor's, behind hookbox's trusted loopback proxy."""
    server = start_hookbox()
    http = httpx.Client(headers={"X-Forwarded-For": "203.0.113.9"})
    with hookbox.Client(server.url, "guess", http_client=http) as guesser:
        for _ in range(10):
            with pytest.raises(hookbox.AuthError):
                guesser.get_server_info()
        with pytest.raises(hookbox.ThrottledError, match="^Too many wrong tokens from your address") as throttled:
            guesser.get_server_info()
        assert throttled.value.status == 429
        assert throttled.value.retry_after is not None and throttled.value.retry_after > 0
    # A publish is retried on 429 (with its idempotency key) after Retry-After, when that is at
    # most max_retry_wait: the retry is answered, here with the wrong token's refusal.
    with hookbox.Client(server.url, "guess", http_client=http, max_retry_wait=1) as impatient:
        with pytest.raises(hookbox.ThrottledError):
            impatient.publish("news", 1)
    with hookbox.Client(server.url, "guess", http_client=http) as patient:
        started = time.monotonic()
        with pytest.raises(hookbox.AuthError):
            patient.publish("news", 1)
        assert time.monotonic() - started >= throttled.value.retry_after - 1
    http.close()
    # The web app's own address is never held back.
    with hookbox.Client(server.url, TOKEN) as own:
        assert own.get_server_info().channels == []


def test_every_call_has_a_timeout() -> None:
    """A server that accepts and never answers: the call ends after its timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with hookbox.Client(url, TOKEN, timeout=0.3, max_retries=0) as client:
            started = time.monotonic()
            with pytest.raises(hookbox.RequestTimeout):
                client.get_server_info()
            with pytest.raises(TimeoutError):
                client.publish("news", 1, timeout=0.2)
            assert time.monotonic() - started < 3
    finally:
        listener.close()


def test_transport_error() -> None:
    port_socket = socket.socket()
    port_socket.bind(("127.0.0.1", 0))
    port = port_socket.getsockname()[1]
    port_socket.close()
    with hookbox.Client(f"http://127.0.0.1:{port}", TOKEN, max_retries=0) as client:
        with pytest.raises(hookbox.TransportError) as failed:
            client.get_server_info()
        assert not isinstance(failed.value, hookbox.RequestTimeout)


def test_async_client(setup: Setup) -> None:
    alice = setup.alice

    async def scenario() -> Any:
        async with hookbox.AsyncClient(setup.server.url, TOKEN, timeout=5) as client:
            await client.create_channel("live", ChannelOptions(history_size=5))
            await client.subscribe("live", "alice")
            await asyncio.gather(*(client.publish("live", n, originator="async") for n in range(3)))
            await client.publish_multi("live", "multi")
            await client.message("bob", "alice", "hi")
            await client.state_set_key("live", "k", [1, 2])
            await client.state_delete_key("live", "k")
            await client.set_channel_options("live", ChannelOptions(anonymous=True))
            await client.set_user_options("bob", UserOptions(moderated_message=False))
            await client.set_config({})
            channel = await client.get_channel_info("live")
            user = await client.get_user_info("alice")
            server = await client.get_server_info()
            await client.subscribe("side", "alice")
            await client.unsubscribe("side", "alice")
            await client.destroy_channel("live", send_hook=False)
            with pytest.raises(hookbox.NotFoundError, match="^Channel live doesn't exist$"):
                await client.publish("live", 1)
            closed = await client.disconnect("bob")
            return channel, user, server, closed

    channel, user, server, closed = asyncio.run(scenario())
    assert channel.options.anonymous is True
    assert user.channels == ["live"]
    assert server.channels == ["live"]
    assert closed == 1
    alice.expect("SUBSCRIBE", channel_name="live", user="alice")
    assert sorted(alice.expect("PUBLISH", channel_name="live")["payload"] for _ in range(3)) == [0, 1, 2]
    assert alice.expect("PUBLISH", channel_name="live")["payload"] == "multi"
    assert alice.expect("MESSAGE")["payload"] == "hi"
    alice.expect("UNSUBSCRIBE", channel_name="side")
    alice.expect("UNSUBSCRIBE", channel_name="live")


def test_send_hook_reaches_the_webhook(setup: Setup) -> None:
    client, app = setup.client, setup.app
    client.create_channel("hooked", ChannelOptions(moderated_publish=True))
    client.publish("hooked", {"n": 1}, originator="desk", send_hook=True)
    webhook = app.next("publish")
    assert webhook.fields["originator"] == "desk"
    assert webhook.fields["payload"] == '{"n": 1}'
