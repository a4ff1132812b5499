"""The Celery configuration: only the CELERY_* Django settings, nothing else.

Celery shows its whole configuration to anyone who may inspect a worker (Flower's worker page,
`celery inspect conf`). Given all of Django's settings it would show them too, censoring only
names it knows to hide: a setting such as a broker URL with a password in a name it does not
know, or a chain's configuration, would be shown in full. So the app reads this module, which
holds the CELERY_ settings and nothing more.
"""

from django.conf import settings

globals().update({name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")})
