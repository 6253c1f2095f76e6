"""The URLconf of the test Django site: docs/sdk-python.md's ``chat`` app, and a login view as any
Django site has one (CSRF-protected, Django's auth)."""

from __future__ import annotations

from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import include, path


def login_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse({"csrf": get_token(request)})
    user = authenticate(request, username=request.POST["username"], password=request.POST["password"])
    if user is None:
        return HttpResponse("wrong name or password", status=403)
    login(request, user)
    return HttpResponse("logged in")


urlpatterns = [path("login", login_view), path("", include("chat.urls"))]
