"""System checks for the production shape."""

from typing import Any

from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.checks import CheckMessage, Error, Tags, register


# Deploy only: `manage.py migrate` runs the ordinary checks and usually comes before
# collectstatic in a release; `check --deploy` is the pre-flight that must see it.
@register(Tags.staticfiles, deploy=True)
def staticfiles_manifest_present(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """A manifest storage (whitenoise's, in production) refuses to render any page naming a static
    file missing from its manifest: without collectstatic the whole admin answers 500."""
    if not isinstance(staticfiles_storage, ManifestFilesMixin):
        return []
    storage: Any = staticfiles_storage
    if storage.exists(storage.manifest_name):
        return []
    return [
        Error(
            f"No static files manifest at {storage.path(storage.manifest_name)}: the admin would answer 500.",
            hint="Run `python manage.py collectstatic --noinput` (part of every release).",
            id="operations.E001",
        )
    ]
