"""hookbox's webhooks: who may connect (the Django session says), which room exists, what may be
said. Every webhook carries the browser's cookies, so ``request.user`` is the visitor."""

import logging

from django.conf import settings
from django.http import HttpRequest

import hookbox
from hookbox import ChannelOptions, replies

ROOM = "lobby"
MAX_LENGTH = 500

log = logging.getLogger("chat")
hooks = hookbox.Hooks(settings.HOOKBOX_WEBHOOK_SECRET)


@hooks.connect
def connect(event: hookbox.ConnectEvent, request: HttpRequest) -> hookbox.Reply:
    if not request.user.is_authenticated:
        log.info("connect refused: no session")
        return replies.deny("Please log in")
    name = request.user.get_username()
    # The session cookie is HttpOnly: the page's script cannot read it, the browser sent it to
    # hookbox with the WebSocket, and hookbox forwarded it here.
    log.info("connect: %s, by the session cookie (sessionid %s)", name, "present" if "sessionid" in event.cookies else "absent")
    return replies.connect(name, override_payload={"staff": request.user.is_staff})


@hooks.create_channel
def create_channel(event: hookbox.CreateChannelEvent, request: HttpRequest) -> hookbox.Reply:
    if event.channel_name != ROOM:
        return replies.deny("There is only the lobby")
    # Anyone logged in may join and leave; each message goes through the publish hook below.
    return replies.create_channel(
        ChannelOptions(moderated=False, moderated_publish=True, presenceful=True, history_size=50)
    )


@hooks.publish
def publish(event: hookbox.PublishEvent, request: HttpRequest) -> hookbox.Reply:
    if not request.user.is_authenticated:
        return replies.deny("Please log in")
    payload = event.payload if isinstance(event.payload, dict) else {}
    text = str(payload.get("text", "")).strip()
    if not text:
        return replies.deny("Empty message")
    if len(text) > MAX_LENGTH:
        return replies.deny(f"Message too long: {len(text)} characters (at most {MAX_LENGTH})")
    return replies.publish(override_payload={"text": text})
