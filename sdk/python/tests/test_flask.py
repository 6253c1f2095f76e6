"""The Flask adapter end to end: docs/sdk-python.md's ``flask_app.py`` on Werkzeug's threaded
server, ``flask.session`` carried by the real webhooks of the real hookbox."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Tuple

import httpx
import pytest

flask = pytest.importorskip("flask")

from docs import SDK_DOC, write_examples  # noqa: E402
from support import Hookbox, Rtjp, RtjpError, ServerThread  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import hookbox  # noqa: E402
import hookbox.flask  # noqa: E402
from hookbox import replies  # noqa: E402

SECRET = "flask webhook secret"


def serve(app: Any) -> Tuple[int, ServerThread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = ServerThread(lambda: server.serve_forever(0.05), server.shutdown)
    return server.server_port, thread


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("FLASK_SECRET_KEY", "test-only-flask-key")
    monkeypatch.setenv("HOOKBOX_WEBHOOK_SECRET", SECRET)
    monkeypatch.syspath_prepend(str(write_examples(SDK_DOC, tmp_path, "flask_app.py")))
    module = importlib.import_module("flask_app")
    yield module
    sys.modules.pop("flask_app", None)


def log_in(url: str, name: str, password: str) -> httpx.Client:
    browser = httpx.Client(base_url=url)
    assert browser.post("/login", data={"name": name, "password": password}).text == "logged in"
    return browser


def test_flask_session_reaches_the_hooks(
    example: Any, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    port, thread = serve(example.app)
    try:
        url = f"http://127.0.0.1:{port}"
        # Every hook to one URL, without a trailing slash.
        server = start_hookbox("--cb-single-url", f"{url}/hookbox", "-s", SECRET)
        alice = rtjp(server)
        browser = log_in(url, "alice", "wonderland")
        assert alice.connect(f"session={browser.cookies['session']}")["name"] == "alice"
        with pytest.raises(RtjpError, match="^Please log in$"):
            rtjp(server).connect("")
        assert httpx.post(f"{url}/login", data={"name": "alice", "password": "x"}).text == "wrong name or password"

        alice.send("SUBSCRIBE", {"channel_name": "news"})
        assert alice.expect("SUBSCRIBE", channel_name="news")["history_size"] == 10
        alice.send("PUBLISH", {"channel_name": "news", "payload": '"hi"'})
        assert alice.expect("PUBLISH", channel_name="news")["payload"] == {"text": "hi", "by": "alice"}

        forged = httpx.post(f"{url}/hookbox/connect", content=b"action=connect&conn_id=1&payload=null")
        assert forged.status_code == 403
        server.stop()
    finally:
        thread.stop()


def test_async_handlers_and_defaults(start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]) -> None:
    """``async def`` handlers (flask[async]); hooks without a handler: the deciding ones are
    refused, the informing ones allowed."""
    app = flask.Flask("async_example")
    hooks = hookbox.Hooks(SECRET)

    @hooks.connect
    async def connect(event: hookbox.ConnectEvent, request: Any) -> hookbox.Reply:
        return replies.connect(event.payload["name"], override_payload={"seen": flask.request.path})

    app.register_blueprint(hookbox.flask.blueprint(hooks, url_prefix="/hooks"))
    port, thread = serve(app)
    try:
        server = start_hookbox("--cbport", str(port), "--cbpath", "/hooks", "-s", SECRET)
        client = rtjp(server)
        connected = client.connect(payload={"name": "zoe"})
        assert connected == {"name": "zoe", "payload": {"seen": "/hooks/connect"}}
        client.send("SUBSCRIBE", {"channel_name": "anything"})
        assert client.expect("ERROR")["msg"] == "No create_channel handler in the web application"
        server.stop()
    finally:
        thread.stop()
