"""Make a researcher account: a staff account (not a superuser) in the Researchers group
(`backend/core/researchers.py`), with a generated password printed once — or, for an existing
account, make it staff and add it to the group, its password unchanged."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction

from backend.core.researchers import GROUP, ensure_researchers_group


class Command(BaseCommand):
    help = "Make a researcher account (staff, in the Researchers group), or make a user one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        username, email = options["username"].strip(), options["email"].strip()
        if not username:
            raise CommandError("give the account's username")
        if email:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"{email!r} is not an email address") from None
        users = get_user_model()
        user = users.objects.filter(username=username).first()
        if user is not None and user.is_superuser:
            raise CommandError(f"{username!r} is a superuser: it may do everything already")
        group = Group.objects.filter(name=GROUP).first()
        if group is None:  # a database migrated before the group existed
            ensure_researchers_group()
            group = Group.objects.get(name=GROUP)
        if user is None:
            password = secrets.token_urlsafe(12)
            user = users.objects.create_user(username, email=email, password=password)
            user.is_staff = True
            user.save(update_fields=["is_staff"])
            user.groups.add(group)
            self.stdout.write(f"Created researcher {username!r}, password {password!r} "
                              "(shown once: ask them to change it in the admin).")  # fmt: skip
            return
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        user.groups.add(group)
        self.stdout.write(f"{username!r} is a researcher now (staff, in {GROUP}); password kept.")
