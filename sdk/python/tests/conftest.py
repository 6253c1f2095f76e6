from __future__ import annotations

from typing import Any, Callable, Iterator, List, Optional

import pytest
from support import TOKEN, Answerer, Hookbox, Rtjp, WebApp


@pytest.fixture
def start_webapp() -> Iterator[Callable[[Answerer], WebApp]]:
    """A recording web app on a free port; stopped after the test."""
    started: List[WebApp] = []

    def start(answer: Answerer) -> WebApp:
        app = WebApp(answer)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def start_hookbox(start_webapp: Any) -> Iterator[Callable[..., Hookbox]]:
    """Starts the real hookbox binary with extra arguments; stopped after the test, before the
    web apps it calls (so its last webhooks find them)."""
    started: List[Hookbox] = []

    def start(*args: str, token: Optional[str] = TOKEN) -> Hookbox:
        hookbox = Hookbox(list(args), token)
        started.append(hookbox)
        return hookbox

    yield start
    for hookbox in started:
        hookbox.stop()


@pytest.fixture
def rtjp() -> Iterator[Callable[..., Rtjp]]:
    """Opens RTJP WebSocket clients to a hookbox; closed after the test."""
    opened: List[Rtjp] = []

    def open_client(hookbox: Hookbox, **kwargs: Any) -> Rtjp:
        client = Rtjp(hookbox, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
