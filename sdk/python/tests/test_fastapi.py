"""The FastAPI adapter end to end: docs/sdk-python.md's ``fastapi_app.py`` served by uvicorn,
real webhooks (JSON format) from the real hookbox, an HttpOnly session cookie, and the async
Web API client inside the app."""

from __future__ import annotations

import importlib
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

pytest.importorskip("fastapi")

import uvicorn  # noqa: E402
from docs import SDK_DOC, write_examples  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from support import TOKEN, Hookbox, Rtjp, RtjpError, ServerThread  # noqa: E402

import hookbox  # noqa: E402
import hookbox.fastapi  # noqa: E402
from hookbox import replies  # noqa: E402

SECRET = "whsec_" + "ZmFzdGFwaS10ZXN0LWtleS0xMjM0NTY3ODkw"


def listening_socket() -> socket.socket:
    """A bound, listening socket: connections wait in its backlog until uvicorn accepts them."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def serve(app: Any, sock: socket.socket) -> ServerThread:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))

    def stop() -> None:
        server.should_exit = True

    return ServerThread(lambda: server.run(sockets=[sock]), stop)


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    def load(hookbox_url: str) -> Any:
        monkeypatch.setenv("HOOKBOX_WEBHOOK_SECRET", SECRET)
        monkeypatch.setenv("HOOKBOX_URL", hookbox_url)
        monkeypatch.setenv("HOOKBOX_API_TOKEN", TOKEN)
        monkeypatch.syspath_prepend(str(write_examples(SDK_DOC, tmp_path, "fastapi_app.py")))
        return importlib.import_module("fastapi_app")

    yield load
    sys.modules.pop("fastapi_app", None)


def test_fastapi_app(
    example: Callable[[str], Any], start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    server = start_hookbox("--cbport", str(port), "-s", SECRET, "--webhook-format", "json")
    thread = serve(example(server.url).app, sock)
    try:
        url = f"http://127.0.0.1:{port}"
        browser = httpx.Client(base_url=url)
        login = browser.post("/login", json={"name": "carol"})
        assert login.json() == {"ok": True}
        assert "HttpOnly" in login.headers["set-cookie"]
        carol = rtjp(server)
        assert carol.connect(f"session={browser.cookies['session']}")["name"] == "carol"
        assert carol.expect("SUBSCRIBE", channel_name="lobby")["history_size"] == 10
        with pytest.raises(RtjpError, match="^Please log in$"):
            rtjp(server).connect("session=forged")

        assert browser.post("/announce", params={"text": "Doors open"}).json() == {"ok": True}
        frame = carol.expect("PUBLISH", channel_name="lobby")
        assert (frame["user"], frame["payload"]) == ("announcer", {"text": "Doors open"})

        forged = browser.post("/hookbox/connect", json={"action": "connect", "conn_id": "1", "payload": None})
        assert forged.status_code == 403
        server.stop()
    finally:
        thread.stop()


def test_starlette_routes_async_and_sync_handlers(
    start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    hooks = hookbox.Hooks(SECRET)

    @hooks.connect
    def connect(event: hookbox.ConnectEvent, request: Any) -> hookbox.Reply:  # runs in the thread pool
        return replies.connect(event.cookies["user"], auto_subscribe=["room"])

    @hooks.create_channel
    async def create_channel(event: hookbox.CreateChannelEvent, request: Any) -> hookbox.Reply:
        return replies.create_channel({"history_size": 3, "moderated": False})

    sock = listening_socket()
    thread = serve(Starlette(routes=hookbox.fastapi.routes(hooks, prefix="/rt")), sock)
    try:
        server = start_hookbox(
            "--cbport", str(sock.getsockname()[1]), "--cbpath", "/rt", "--cbtrailingslash", "-s", SECRET
        )
        client = rtjp(server)
        assert client.connect("user=dan")["name"] == "dan"
        assert client.expect("SUBSCRIBE", channel_name="room")["history_size"] == 3
        server.stop()
    finally:
        thread.stop()
