"""``tanfang token USERNAME``: issue (or show, or replace) a user's API token."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from tanfang.accounts.models import User
from tanfang.api.permissions import has_role


class Command(BaseCommand):
    help = (
        "Print the API token of USERNAME, creating one if the user has none. "
        "--rotate replaces it (the old one stops working); --revoke deletes it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--rotate", action="store_true", help="replace the existing token")
        group.add_argument("--revoke", action="store_true", help="delete the token")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user named {options['username']!r}")
        with transaction.atomic():
            if options["revoke"]:
                deleted, _ = Token.objects.filter(user=user).delete()
                self.stdout.write("revoked" if deleted else "no token to revoke")
                return
            if not has_role(user):
                raise CommandError(
                    f"{user.username} has no role and area (or is inactive): a token would "
                    "open nothing; give the user a role and an area first"
                )
            if options["rotate"]:
                Token.objects.filter(user=user).delete()
            token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
