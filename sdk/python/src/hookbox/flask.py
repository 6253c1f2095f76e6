"""Flask adapter: a blueprint serving every hook (``pip install 'hookbox-sdk[flask]'``).

::

    app.register_blueprint(hookbox.flask.blueprint(hooks))    # POST /hookbox/ and /hookbox/<action>

Handlers run inside the webhook's request context: the webhook carries the browser's cookies, so
``flask.session`` is the visitor's session. ``async def`` handlers need ``flask[async]``. With
Flask-WTF's ``CSRFProtect``, exempt the blueprint (``csrf.exempt(bp)``): the signature replaces
the CSRF token.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from .hooks import Answer, Hooks

__all__ = ["blueprint", "response"]


def response(answer: Answer) -> Response:
    """An :class:`~hookbox.hooks.Answer` as a Flask response."""
    return Response(answer.body, status=answer.status, headers=answer.headers)


def blueprint(hooks: Hooks, *, url_prefix: str = "/hookbox", name: str = "hookbox") -> Blueprint:
    """A blueprint answering POSTs to ``<url_prefix>/`` and ``<url_prefix>/<action>``."""
    bp = Blueprint(name, __name__, url_prefix=url_prefix)

    def webhook(action: str = "") -> Response:
        answer = hooks.handle(
            request.get_data(), request.headers, request, run_async=lambda fn: current_app.ensure_sync(fn)()
        )
        return response(answer)

    bp.add_url_rule("/", "webhook", webhook, methods=["POST"], strict_slashes=False)
    bp.add_url_rule("/<action>", "webhook", webhook, methods=["POST"])
    bp.add_url_rule("/<action>/", "webhook", webhook, methods=["POST"])
    return bp
