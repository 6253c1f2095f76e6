from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

import hookbox

from .hooks import MAX_LENGTH, ROOM

# The Web API client: the app pushes into hookbox itself (here: announcements).
client = hookbox.Client(settings.HOOKBOX_URL, settings.HOOKBOX_API_TOKEN, timeout=5)


@login_required
def room(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/room.html", {"hookbox_url": settings.HOOKBOX_URL, "room": ROOM})


@require_POST
@login_required
def announce(request: HttpRequest) -> JsonResponse:
    if not request.user.is_staff:
        return JsonResponse({"error": "Only staff may announce"}, status=403)
    text = request.POST.get("text", "").strip()
    if not text or len(text) > MAX_LENGTH:
        return JsonResponse({"error": f"An announcement has 1 to {MAX_LENGTH} characters"}, status=400)
    try:
        # Retried safely on a timeout: the client sends an idempotency key with it.
        client.publish(ROOM, {"text": text, "announcement": True}, originator=request.user.get_username())
    except hookbox.NotFoundError:
        return JsonResponse({"error": "Nobody is in the room"}, status=409)
    except hookbox.HookboxError as error:
        return JsonResponse({"error": f"hookbox: {error}"}, status=502)
    return JsonResponse({"ok": True})
