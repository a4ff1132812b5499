"""Staff users for the admin tests: exactly the permissions a test names, never more."""

from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient


def permission(name: str) -> Permission:
    """A permission by its "app_label.codename" name."""
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def staff(username: str, *permissions: str, superuser: bool = False) -> User:
    """A staff user holding exactly these permissions (or a superuser)."""
    user = User.objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    user.user_permissions.add(*(permission(name) for name in permissions))
    return User.objects.get(pk=user.pk)  # a fresh object: no stale permission cache


def logged_in(user: User) -> HttpClient:
    """A test client with this user's session (the admin's OTP rule is off in the test settings)."""
    http = HttpClient()
    http.force_login(user)
    return http
