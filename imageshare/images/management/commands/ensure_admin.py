import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin account if it does not exist; print its password once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=settings.ADMIN_USERNAME)

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Admin account '{username}' exists (reset it with: manage.py changepassword {username})."
            )
            return
        password = settings.ADMIN_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if settings.ADMIN_PASSWORD:
            self.stdout.write(f"Created admin account '{username}' with the password from IMAGESHARE_ADMIN_PASSWORD.")
        else:
            # Printed once, here; it is stored only as a hash.
            self.stdout.write(f"Created admin account '{username}' with password: {password}")
