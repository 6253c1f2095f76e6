"""FastAPI / Starlette adapter (``pip install 'hookbox-sdk[fastapi]'``; only Starlette is imported).

::

    app.include_router(hookbox.fastapi.router(hooks))      # FastAPI
    Starlette(routes=hookbox.fastapi.routes(hooks))        # Starlette

``async def`` handlers are awaited; plain ones run in Starlette's thread pool. Handlers get the
Starlette ``Request`` (cookies, ``request.session`` with ``SessionMiddleware``, ``request.app``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, List

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .hooks import Answer, Hooks

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["endpoint", "routes", "router", "response"]


def response(answer: Answer) -> Response:
    """An :class:`~hookbox.hooks.Answer` as a Starlette response."""
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def endpoint(hooks: Hooks) -> Callable[[Request], Awaitable[Response]]:
    """The webhook endpoint of ``hooks``, for any route you like."""

    async def hookbox_webhook(request: Request) -> Response:
        body = await request.body()
        answer = await hooks.ahandle(body, request.headers, request, run_sync=run_in_threadpool)
        return response(answer)

    return hookbox_webhook


def routes(hooks: Hooks, prefix: str = "/hookbox") -> List[Route]:
    """POST routes for ``<prefix>/`` and ``<prefix>/<action>`` (trailing slash or not)."""
    ep = endpoint(hooks)
    return [Route(path, ep, methods=["POST"]) for path in _paths(prefix)]


def _paths(prefix: str) -> List[str]:
    prefix = "/" + prefix.strip("/")
    return [prefix, prefix + "/", prefix + "/{action}", prefix + "/{action}/"]


def router(hooks: Hooks, prefix: str = "/hookbox") -> "APIRouter":
    """A FastAPI ``APIRouter`` with the same routes (kept out of the OpenAPI schema)."""
    from fastapi import APIRouter

    api_router = APIRouter()
    ep = endpoint(hooks)
    for path in _paths(prefix):
        api_router.add_route(path, ep, methods=["POST"], include_in_schema=False)
    return api_router
