"""The examples of docs/sdk-python.md that are not an adapter's (those are in test_django.py,
test_flask.py, test_fastapi.py), run as written against the real hookbox; and a check that every
example of the SDK pages is run by some test."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest
from docs import FRAMEWORKS_DOC, SDK_DOC, examples, write_examples
from support import TOKEN, Hookbox, Rtjp, RtjpError, WebApp, Webhook

import hookbox
from hookbox import ChannelOptions, replies

TESTS = Path(__file__).resolve().parent


def unmoderated(webhook: Webhook) -> hookbox.Reply:
    if webhook.action == "connect":
        return replies.connect("watcher")
    return (
        replies.create_channel(ChannelOptions(moderated=False))
        if webhook.action == "create_channel"
        else replies.allow()
    )


def run_example(path: Path, server: Hookbox) -> str:
    env = {**os.environ, "HOOKBOX_URL": server.url, "HOOKBOX_API_TOKEN": TOKEN, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_run_by_a_test() -> None:
    sources = "\n".join(p.read_text() for p in TESTS.glob("test_*.py"))
    for doc in (SDK_DOC, FRAMEWORKS_DOC):
        for path in examples(doc):
            assert f'"{path}"' in sources, f"{doc.name}: no test runs {path}"


def test_the_package_is_tested_as_installed() -> None:
    """test.sh installs the package the way the doc says, and the tests import that copy."""
    test_sh = (TESTS.parent / "test.sh").read_text()
    assert re.search(r"pip\"? install (--\S+ )*'\./sdk/python\[django,flask,fastapi\]'", test_sh)
    assert "pip install ./sdk/python " in SDK_DOC.read_text()
    assert "pip install './sdk/python[django]'" in SDK_DOC.read_text()
    assert "site-packages" in Path(hookbox.__file__).parts


def test_publish_example(tmp_path: Path, start_hookbox: Callable[..., Hookbox]) -> None:
    server = start_hookbox()
    out = run_example(write_examples(SDK_DOC, tmp_path, "publish.py") / "publish.py", server)
    assert out.splitlines() == [
        "10 {'period': 'second half'} []",
        "refused: Channel no-such-channel doesn't exist",
    ]
    with hookbox.Client(server.url, TOKEN) as client:
        history = client.get_channel_info("scores").options.history or []
    assert [(e[0], e[1]["payload"], e[1]["user"]) for e in history] == [
        ("PUBLISH", {"home": 2, "away": 1}, "scoreboard")
    ]


def test_publish_async_example(tmp_path: Path, start_hookbox: Callable[..., Hookbox]) -> None:
    server = start_hookbox()
    out = run_example(write_examples(SDK_DOC, tmp_path, "publish_async.py") / "publish_async.py", server)
    assert out.strip() == "['ticker']"


def test_retries_example(
    tmp_path: Path,
    start_hookbox: Callable[..., Hookbox],
    start_webapp: Callable[..., WebApp],
    rtjp: Callable[..., Rtjp],
) -> None:
    app = start_webapp(unmoderated)
    server = start_hookbox("--cbport", str(app.port))
    watcher = rtjp(server)
    watcher.connect()
    watcher.send("SUBSCRIBE", {"channel_name": "orders"})
    watcher.expect("SUBSCRIBE", channel_name="orders")
    run_example(write_examples(SDK_DOC, tmp_path, "retries.py") / "retries.py", server)
    with hookbox.Client(server.url, TOKEN) as client:
        client.publish("orders", "marker")
    received = []
    while (payload := watcher.expect("PUBLISH")["payload"]) != "marker":
        received.append(payload)
    assert received == [{"order": 17, "status": "shipped"}]


@pytest.fixture
def any_framework(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("HOOKBOX_WEBHOOK_SECRET", "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtZXhhbXBsZQ==")
    monkeypatch.syspath_prepend(str(write_examples(SDK_DOC, tmp_path, "any_framework.py")))
    module = importlib.import_module("any_framework")
    yield module
    sys.modules.pop("any_framework", None)


def serve(handle: Callable[[bytes, Dict[str, str]], Any]) -> ThreadingHTTPServer:
    """The example's handle_webhook behind the standard library's HTTP server."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, headers, answer = handle(body, dict(self.headers.items()))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def test_any_framework_example(
    any_framework: Any, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    webapp = serve(any_framework.handle_webhook)
    try:
        port = str(webapp.server_address[1])
        server = start_hookbox("--cbport", port, "-s", os.environ["HOOKBOX_WEBHOOK_SECRET"])
        alice = rtjp(server)
        assert alice.connect("sessionid=s3cr3t-session-id")["name"] == "alice"
        with pytest.raises(RtjpError, match="^Please log in$"):
            rtjp(server).connect("sessionid=guess")
        alice.send("SUBSCRIBE", {"channel_name": "lobby"})
        assert alice.expect("SUBSCRIBE", channel_name="lobby")["presence"] == ["alice"]
        alice.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": "  hi  "}'})
        assert alice.expect("PUBLISH")["payload"] == {"text": "hi"}
        alice.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": " "}'})
        assert alice.expect("ERROR")["msg"] == "Empty message"

        impostor = start_hookbox("--cbport", port, "-s", "not the secret")
        with pytest.raises(RtjpError, match="^failure: HTTP 403$"):
            rtjp(impostor).connect("sessionid=s3cr3t-session-id")
        impostor.stop()
        server.stop()
    finally:
        webapp.shutdown()
        webapp.server_close()


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CONNECT_TOKEN_KEY", "token key")
    monkeypatch.setenv("HOOKBOX_WEBHOOK_SECRET", "tokens webhook secret")
    monkeypatch.syspath_prepend(str(write_examples(FRAMEWORKS_DOC, tmp_path, "tokens.py")))
    yield importlib.import_module("tokens")
    sys.modules.pop("tokens", None)


def test_tokens_example(tokens: Any, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]) -> None:
    def handle(body: bytes, headers: Dict[str, str]) -> Any:
        answer = tokens.hooks.handle(body, headers, None)
        return answer.status, answer.headers, answer.body

    webapp = serve(handle)
    try:
        server = start_hookbox("--cbport", str(webapp.server_address[1]), "-s", "tokens webhook secret")
        token = tokens.connect_token("alice")
        assert rtjp(server).connect(payload={"token": token})["name"] == "alice"
        user, expires, mac = token.rsplit("|", 2)
        for bad in (f"mallory|{expires}|{mac}", tokens.connect_token("alice", ttl=-5), "garbage", None):
            with pytest.raises(RtjpError, match="^Invalid or expired token$"):
                rtjp(server).connect(payload={"token": bad})
        server.stop()
    finally:
        webapp.shutdown()
        webapp.server_close()
