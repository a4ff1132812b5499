"""Choosing an adapter by name from a settings map ({"name": "dotted.path.Class"}), as
django-payments chooses a payment backend from PAYMENT_VARIANTS: the kernel loads whatever the
settings name, and knows none of them."""

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


def load_adapter(settings_map: str, name: str) -> Any:
    """A new instance of the class that settings.<settings_map>[name] names."""
    try:
        path = getattr(settings, settings_map)[name]
    except KeyError:
        raise LookupError(f"{name!r} is not in {settings_map}") from None
    return import_string(path)()
