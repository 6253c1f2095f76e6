from django.contrib.auth import views as auth_views
from django.urls import path

import hookbox.django

from . import views
from .hooks import hooks

urlpatterns = [
    path("", views.room, name="room"),
    path("login/", auth_views.LoginView.as_view(template_name="chat/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("announce", views.announce, name="announce"),
    # hookbox's webhooks: POST /hookbox/<action> (CSRF-exempt, signature checked).
    *hookbox.django.urls(hooks),
]
