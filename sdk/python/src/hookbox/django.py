"""Django adapter: a CSRF-exempt view serving every hook (``pip install 'hookbox-sdk[django]'``).

::

    # urls.py
    urlpatterns = [..., *hookbox.django.urls(hooks)]        # POST /hookbox/ and /hookbox/<action>

The view is exempt from Django's CSRF check because it checks hookbox's signature instead
(without the exemption Django answers ``Forbidden (CSRF cookie not set.)``). Handlers get the
``HttpRequest``: the webhook carries the browser's cookies, so ``request.session`` and
``request.user`` are the visitor's. ``async def`` handlers run through asgiref.
"""

from __future__ import annotations

import re
from typing import Any, Callable, List, cast

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .hooks import Answer, Hooks

__all__ = ["view", "urls", "response"]


def response(answer: Answer) -> HttpResponse:
    """An :class:`~hookbox.hooks.Answer` as a Django response."""
    out = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        out[name] = value
    return out


def view(hooks: Hooks) -> Callable[..., HttpResponse]:
    """The webhook view of ``hooks``: POST only, CSRF-exempt, signature checked."""

    @csrf_exempt
    @require_POST
    def hookbox_webhook(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        answer = hooks.handle(request.body, request.headers, request, run_async=lambda fn: async_to_sync(fn)())
        return response(answer)

    return cast(Callable[..., HttpResponse], hookbox_webhook)


def urls(hooks: Hooks, prefix: str = "hookbox", name: str = "hookbox-webhook") -> List[URLPattern]:
    """A URL pattern for ``<prefix>`` and ``<prefix>/<action>``, each with or without a trailing
    slash, served by :func:`view`."""
    prefix = prefix.strip("/")
    return [re_path(rf"^{re.escape(prefix)}(?:/[^/]+)?/?$", view(hooks), name=name)]
