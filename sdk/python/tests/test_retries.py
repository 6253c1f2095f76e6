"""Safe retries: only publish, publish_multi and message are retried, always with one
idempotency key per logical call, and the real hookbox applies a key once. Faults come from a
small proxy in front of the real hookbox that loses answers or fails on purpose."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List
from urllib.parse import parse_qsl

import httpx
import pytest
from support import TOKEN, Hookbox, Rtjp, WebApp, Webhook

import hookbox
from hookbox import ChannelOptions, replies
from hookbox.events import parse_cookies


class FaultyProxy:
    """Forwards Web API calls to hookbox, but handles the n-th call as ``plan[n]`` says:
    ``"lose"`` (forward it, then drop the answer: the call was applied, the caller hears nothing),
    ``"503"`` (answer 503 without forwarding), ``"forward"``; past the plan, forward."""

    def __init__(self, target: str, plan: List[str]) -> None:
        self.plan = list(plan)
        self.forms: List[Dict[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.forms.append(dict(parse_qsl(body.decode())))
                step = proxy.plan.pop(0) if proxy.plan else "forward"
                if step == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = httpx.post(
                    target + self.path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
                )
                if step == "lose":
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(webhook: Webhook) -> hookbox.Reply:
    if webhook.action == "connect":
        return replies.connect(parse_cookies(webhook.headers.get("Cookie", ""))["user"])
    return (
        replies.create_channel(ChannelOptions(moderated=False))
        if webhook.action == "create_channel"
        else replies.allow()
    )


@pytest.fixture
def server(start_hookbox: Callable[..., Hookbox], start_webapp: Callable[..., WebApp]) -> Hookbox:
    app = start_webapp(answer)
    return start_hookbox("--cbport", str(app.port))


@pytest.fixture
def listener(server: Hookbox, rtjp: Callable[..., Rtjp]) -> Rtjp:
    """User ann, subscribed to ``news``, which she and bob have joined."""
    ann = rtjp(server)
    ann.connect("user=ann")
    rtjp(server).connect("user=bob")
    with hookbox.Client(server.url, TOKEN) as client:
        client.create_channel("news")
        client.subscribe("news", "ann")
    ann.expect("SUBSCRIBE", channel_name="news")
    return ann


@pytest.fixture
def proxy(server: Hookbox) -> Iterator[Callable[[List[str]], FaultyProxy]]:
    made: List[FaultyProxy] = []

    def make(plan: List[str]) -> FaultyProxy:
        made.append(FaultyProxy(server.url, plan))
        return made[-1]

    yield make
    for p in made:
        p.stop()


def publications_before_marker(ann: Rtjp) -> List[Any]:
    """The payloads ann receives on ``news`` until the ``"marker"`` publication (publications of
    one channel arrive in order, so everything published before the marker is in)."""
    payloads: List[Any] = []
    while True:
        payload = ann.expect("PUBLISH", channel_name="news")["payload"]
        if payload == "marker":
            return payloads
        payloads.append(payload)


def test_same_key_twice_is_applied_once(server: Hookbox, listener: Rtjp) -> None:
    with hookbox.Client(server.url, TOKEN) as client:
        client.publish("news", "once", idempotency_key="key-1")
        client.publish("news", "once", idempotency_key="key-1")
        client.publish_multi(["news"], "multi once", idempotency_key="key-2")
        client.publish_multi(["news"], "multi once", idempotency_key="key-2")
        client.message("bob", "ann", "dm once", idempotency_key="key-3")
        client.message("bob", "ann", "dm once", idempotency_key="key-3")
        client.publish("news", "marker")
        with pytest.raises(hookbox.ApiError, match="^Invalid idempotency_key"):
            client.publish("news", "x", idempotency_key="has spaces")
    assert publications_before_marker(listener) == ["once", "multi once"]
    assert [args["payload"] for name, args in listener.seen if name == "MESSAGE"] == ["dm once"]


def test_lost_answer_is_retried_with_the_same_key(
    server: Hookbox, listener: Rtjp, proxy: Callable[[List[str]], FaultyProxy]
) -> None:
    faulty = proxy(["lose", "503"])
    with hookbox.Client(faulty.url, TOKEN, retry_backoff=0.01) as client:
        client.publish("news", {"n": 1})
    keys = [form["idempotency_key"] for form in faulty.forms]
    assert len(keys) == 3 and len(set(keys)) == 1 and len(keys[0]) == 32
    with hookbox.Client(server.url, TOKEN) as direct:
        direct.publish("news", "marker")
    assert publications_before_marker(listener) == [{"n": 1}]


def test_async_client_retries_too(server: Hookbox, listener: Rtjp, proxy: Callable[[List[str]], FaultyProxy]) -> None:
    faulty = proxy(["lose", "lose"])

    async def publish() -> None:
        async with hookbox.AsyncClient(faulty.url, TOKEN, retry_backoff=0.01) as client:
            await client.message("bob", "ann", "hello")
            await client.publish_multi(["news"], "multi")

    asyncio.run(publish())
    assert len(faulty.forms) == 4
    with hookbox.Client(server.url, TOKEN) as direct:
        direct.publish("news", "marker")
    assert publications_before_marker(listener) == ["multi"]
    assert [args["payload"] for name, args in listener.seen if name == "MESSAGE"] == ["hello"]


def test_retries_give_up(server: Hookbox, listener: Rtjp, proxy: Callable[[List[str]], FaultyProxy]) -> None:
    faulty = proxy(["503"] * 10)
    with hookbox.Client(faulty.url, TOKEN, retry_backoff=0.01, max_retries=2) as client:
        with pytest.raises(hookbox.ResponseError) as failed:
            client.publish("news", 1)
    assert failed.value.status == 503
    assert len(faulty.forms) == 3


def test_other_methods_are_not_retried(
    server: Hookbox, listener: Rtjp, proxy: Callable[[List[str]], FaultyProxy]
) -> None:
    faulty = proxy(["lose", "503"])
    with hookbox.Client(faulty.url, TOKEN, retry_backoff=0.01) as client:
        with pytest.raises(hookbox.TransportError):
            client.subscribe("news", "bob")
        with pytest.raises(hookbox.ResponseError):
            client.state_set_key("news", "k", 1)
    assert len(faulty.forms) == 2


def test_without_retries_no_key_is_invented(
    server: Hookbox, listener: Rtjp, proxy: Callable[[List[str]], FaultyProxy]
) -> None:
    faulty = proxy(["lose"])
    with hookbox.Client(faulty.url, TOKEN, max_retries=0) as client:
        with pytest.raises(hookbox.TransportError):
            client.publish("news", 1)
        client.publish("news", 2, idempotency_key="mine")
    assert "idempotency_key" not in faulty.forms[0]
    assert faulty.forms[1]["idempotency_key"] == "mine"
    assert hookbox.new_idempotency_key() != hookbox.new_idempotency_key()
