from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

DEMO_USERS = [
    ("alice", "wonderland", True),  # staff: may send announcements
    ("bob", "builder", False),
]


class Command(BaseCommand):
    help = "Creates the chat's demo users (alice / wonderland, staff; bob / builder), or resets their passwords."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, password, staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=name)
            user.set_password(password)
            user.is_staff = staff
            user.save()
        self.stdout.write("Demo users: " + ", ".join(f"{n} / {p}" for n, p, _ in DEMO_USERS))
