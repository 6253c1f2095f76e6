"""The Django adapter end to end: docs/sdk-python.md's ``chat`` app (hooks, urls, views) in a
real Django site served by Django's own threaded WSGI server, with Django's session, auth and
CSRF middleware; real webhooks from the real hookbox, triggered by RTJP clients that carry the
visitor's session cookie."""

from __future__ import annotations

import base64
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List

import httpx
import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler  # noqa: E402
from docs import SDK_DOC, write_examples  # noqa: E402
from support import TOKEN, Hookbox, Rtjp, RtjpError  # noqa: E402

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class QuietHandler(WSGIRequestHandler):  # type: ignore[misc]
    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Site:
    url: str
    port: int
    hookbox: Hookbox

    def login(self, username: str, password: str) -> httpx.Client:
        """A browser session logged in through the site's own login view (CSRF included)."""
        browser = httpx.Client(base_url=self.url)
        token = browser.get("/login").json()["csrf"]
        answer = browser.post("/login", data={"username": username, "password": password, "csrfmiddlewaretoken": token})
        assert answer.text == "logged in", answer.text
        return browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("django_site")
    write_examples(SDK_DOC, root, "chat/hooks.py", "chat/urls.py", "chat/views.py")
    sys.path.insert(0, str(root))
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-" + os.urandom(8).hex(),
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF="django_site",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "db.sqlite3")}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        HOOKBOX_WEBHOOK_SECRET=SECRET,
        HOOKBOX_API_TOKEN=TOKEN,
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    User.objects.create_user("alice", password="alice-pw", is_staff=True)
    User.objects.create_user("bob", password="bob-pw")

    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_wsgi_application())
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    port = httpd.server_address[1]
    hookbox_server = Hookbox(["--cbport", str(port), "-s", SECRET])
    settings.HOOKBOX_URL = hookbox_server.url  # read when chat.views is first imported
    try:
        yield Site(f"http://127.0.0.1:{port}", port, hookbox_server)
    finally:
        hookbox_server.stop()
        httpd.shutdown()
        httpd.server_close()
        sys.path.remove(str(root))


def session_cookie(browser: httpx.Client) -> str:
    return f"sessionid={browser.cookies['sessionid']}"


def test_connect_subscribe_publish_as_the_logged_in_user(site: Site, rtjp: Callable[..., Rtjp]) -> None:
    alice_browser = site.login("alice", "alice-pw")
    bob_browser = site.login("bob", "bob-pw")

    alice = rtjp(site.hookbox)
    assert alice.connect(session_cookie(alice_browser))["name"] == "alice"
    assert alice.expect("SUBSCRIBE", channel_name="lobby")["presence"] == ["alice"]  # auto_subscribe

    bob = rtjp(site.hookbox)
    assert bob.connect(session_cookie(bob_browser))["name"] == "bob"
    bob.expect("SUBSCRIBE", channel_name="lobby", user="bob")
    # A SUBSCRIBE of the client's own goes through the subscribe hook (auto_subscribe does not).
    bob.send("UNSUBSCRIBE", {"channel_name": "lobby"})
    bob.expect("UNSUBSCRIBE", channel_name="lobby", user="bob")
    bob.send("SUBSCRIBE", {"channel_name": "lobby"})
    joined = bob.expect("SUBSCRIBE", channel_name="lobby", user="bob")
    assert joined["initial_data"] == {"motd": "Welcome, bob"}
    bob.send("SUBSCRIBE", {"channel_name": "kitchen"})
    assert bob.expect("ERROR")["msg"] == "No such room"

    bob.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": "  hello  "}'})
    assert alice.expect("PUBLISH", user="bob")["payload"] == {"text": "hello", "staff": False}
    alice.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": "hi bob"}'})
    assert bob.expect("PUBLISH", user="alice")["payload"] == {"text": "hi bob", "staff": True}
    bob.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": ""}'})
    assert bob.expect("ERROR")["msg"] == "Empty message"

    with pytest.raises(RtjpError, match="^Please log in$"):
        rtjp(site.hookbox).connect("sessionid=forged")


def test_announce_through_the_web_api(site: Site, rtjp: Callable[..., Rtjp]) -> None:
    alice_browser = site.login("alice", "alice-pw")
    listener = rtjp(site.hookbox)
    listener.connect(session_cookie(site.login("bob", "bob-pw")))
    listener.expect("SUBSCRIBE", channel_name="lobby", user="bob")

    # An ordinary Django view: CSRF-protected, staff only; it publishes with hookbox.Client.
    refused = alice_browser.post("/announce", data={"text": "no token"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    csrf = alice_browser.cookies["csrftoken"]
    answer = alice_browser.post("/announce", data={"text": "Closing at six"}, headers={"X-CSRFToken": csrf})
    assert answer.json() == {"ok": True}
    frame = listener.expect("PUBLISH", user="announcer")
    assert frame["payload"] == {"text": "Closing at six"}

    bob_browser = site.login("bob", "bob-pw")
    denied = bob_browser.post(
        "/announce", data={"text": "me too"}, headers={"X-CSRFToken": bob_browser.cookies["csrftoken"]}
    )
    assert denied.status_code == 403


def test_the_webhook_view_checks_the_signature_not_csrf(
    site: Site, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    forged = httpx.post(f"{site.url}/hookbox/connect", data={"action": "connect", "conn_id": "x", "payload": "null"})
    assert forged.status_code == 403
    assert forged.text.startswith("webhook not verified")
    assert httpx.get(f"{site.url}/hookbox/connect").status_code == 405

    impostor = start_hookbox("--cbport", str(site.port), "-s", "whsec_" + base64.b64encode(b"another key").decode())
    with pytest.raises(RtjpError, match="^failure: HTTP 403$"):
        rtjp(impostor).connect(session_cookie(site.login("alice", "alice-pw")))


@pytest.mark.parametrize(
    "extra", [["--cb-single-url", "/hookbox/"], ["--webhook-format", "json"], ["--cbtrailingslash"]]
)
def test_single_url_json_and_trailing_slash(
    extra: List[str], site: Site, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    args = [f"{site.url}/hookbox/" if a == "/hookbox/" else a for a in extra]
    server = start_hookbox("--cbport", str(site.port), "-s", SECRET, *args)
    client = rtjp(server)
    assert client.connect(session_cookie(site.login("bob", "bob-pw")))["name"] == "bob"
    client.send("PUBLISH", {"channel_name": "lobby", "payload": '{"text": "x"}'})
    assert client.expect("PUBLISH", channel_name="lobby")["payload"] == {"text": "x", "staff": False}


def test_the_browser_s_httponly_session_reaches_the_connect_hook(
    site: Site, start_hookbox: Callable[..., Hookbox], rtjp: Callable[..., Rtjp]
) -> None:
    """As a browser connects: the page's script sees no sessionid (HttpOnly), so its
    cookie_string lacks it; the WebSocket upgrade carries it. hookbox hands it to the connect
    webhook for a page on --allowed-origins, and never for another origin."""
    server = start_hookbox("--cbport", str(site.port), "-s", SECRET, "--allowed-origins", site.url)
    browser = site.login("alice", "alice-pw")
    cookies = f"{session_cookie(browser)}; csrftoken={browser.cookies['csrftoken']}"
    page = rtjp(server, origin=site.url, cookie_header=cookies)
    assert page.connect(f"csrftoken={browser.cookies['csrftoken']}")["name"] == "alice"

    open_server = start_hookbox("--cbport", str(site.port), "-s", SECRET)  # any page may connect
    elsewhere = rtjp(open_server, origin="http://127.0.0.1:1", cookie_header=cookies)
    with pytest.raises(RtjpError, match="^Please log in$"):
        elsewhere.connect("")
