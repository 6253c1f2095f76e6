"""What the tests share: the real hookbox binary on free ports, an RTJP WebSocket client
speaking as a browser would, a recording web app, and real framework servers on free ports."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import websockets.sync.client

from hookbox.events import read_fields
from hookbox.replies import Reply

REPO = Path(__file__).resolve().parents[3]
HOOKBOX_BIN = os.environ.get("HOOKBOX_BIN", str(REPO / "target" / "debug" / "hookbox"))
TOKEN = "test-token"
TIMEOUT = 15.0

LISTENING = re.compile(r"Listening to hookbox on http://127\.0\.0\.1:(\d+)")


class Hookbox:
    """One hookbox process on a free loopback port; ``url``, ``port``, ``token``, ``log``."""

    def __init__(self, args: List[str], token: Optional[str] = TOKEN) -> None:
        self.token = token
        argv = [HOOKBOX_BIN, "-i", "127.0.0.1", "-p", "0", *(["-r", token] if token else []), *args]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: List[str] = []
        self._eof = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.wait_for_log(LISTENING)
        match = LISTENING.search(first)
        assert match, first
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for_log(self, pattern: "re.Pattern[str]", timeout: float = TIMEOUT) -> str:
        """The first log line matching ``pattern``, waiting for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if pattern.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"hookbox logged no {pattern.pattern!r}:\n" + "\n".join(self.lines))
                self._changed.wait(left)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RtjpError(AssertionError):
    pass


class Rtjp:
    """A browser-like RTJP client over a WebSocket: ``[id, "NAME", {args}]\\r\\n`` frames."""

    def __init__(self, hookbox: Hookbox, origin: Optional[str] = None, cookie_header: Optional[str] = None) -> None:
        """``origin`` and ``cookie_header`` are what a browser sends with the WebSocket upgrade:
        its page's origin and its own cookies for hookbox's host (HttpOnly ones included)."""
        headers = {}
        if origin:
            headers["Origin"] = origin
        if cookie_header:
            headers["Cookie"] = cookie_header
        self._connection = websockets.sync.client.connect(
            hookbox.ws_url, open_timeout=TIMEOUT, additional_headers=headers or None
        )
        self.ws = self._connection.__enter__()
        self.next_id = 1
        self.pending: List[Tuple[str, Dict[str, Any]]] = []
        self.seen: List[Tuple[str, Dict[str, Any]]] = []

    def send(self, name: str, args: Dict[str, Any]) -> int:
        frame_id = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps([frame_id, name, args]) + "\r\n")
        return frame_id

    def recv(self, timeout: float = TIMEOUT) -> Tuple[str, Dict[str, Any]]:
        while not self.pending:
            message = self.ws.recv(timeout=timeout)
            text = message if isinstance(message, str) else message.decode()
            for line in text.split("\r\n"):
                if line.strip():
                    _, name, args = json.loads(line)
                    self.pending.append((name, args))
        frame = self.pending.pop(0)
        self.seen.append(frame)
        return frame

    def expect(self, name: str, timeout: float = TIMEOUT, **match: Any) -> Dict[str, Any]:
        """The next frame called ``name`` whose args include ``match``; other frames are skipped
        (they stay in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            got, args = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if got == name and all(args.get(k) == v for k, v in match.items()):
                return args

    def connect(self, cookie_string: str = "", payload: Any = None) -> Dict[str, Any]:
        """Sends CONNECT; returns CONNECTED's args, or raises RtjpError with the ERROR's msg."""
        args: Dict[str, Any] = {"cookie_string": cookie_string}
        if payload is not None:
            args["payload"] = json.dumps(payload)
        self.send("CONNECT", args)
        while True:
            name, got = self.recv()
            if name == "ERROR":
                raise RtjpError(got["msg"])
            if name == "CONNECTED":
                return got
            assert name == "SET_COOKIE", (name, got)  # the webhook reply's Set-Cookie comes first

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


@dataclass
class Webhook:
    """One request the recording web app received."""

    path: str
    headers: Message
    """Case-insensitive: ``headers["Cookie"]``, ``headers.get("X-Real-IP")``."""
    body: bytes
    fields: Dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> Optional[str]:
        action = self.fields.get("action")
        return None if action is None else str(action)


Answerer = Callable[[Webhook], Reply]


class WebApp:
    """A web app on a free port that records every webhook (exact bytes and headers) and answers
    with ``answer(webhook)``."""

    def __init__(self, answer: Answerer) -> None:
        self.answer = answer
        self.calls: "queue.Queue[Webhook]" = queue.Queue()
        self.log: List[Webhook] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                webhook = Webhook(self.path, self.headers, body, read_fields(body, self.headers))
                reply = app.answer(webhook)
                # Recorded before it is answered: once hookbox acts on the answer (a CONNECTED
                # sent, say), the webhook is in the log, and ``forget`` drops it.
                app.log.append(webhook)
                app.calls.put(webhook)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def next(self, action: Optional[str] = None, timeout: float = TIMEOUT) -> Webhook:
        """The next recorded webhook (of ``action``, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                webhook = self.calls.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {action or 'webhook'} call within {timeout}s") from None
            if action is None or webhook.action == action:
                return webhook

    def forget(self) -> None:
        """Drops the webhooks received so far from what ``next`` returns."""
        while not self.calls.empty():
            self.calls.get_nowait()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ServerThread:
    """Runs a blocking ``serve()`` in a daemon thread; ``stop()`` calls ``shutdown()``."""

    def __init__(self, serve: Callable[[], None], shutdown: Callable[[], None]) -> None:
        self._shutdown = shutdown
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._shutdown()
        self.thread.join(TIMEOUT)
