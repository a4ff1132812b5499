"""The Celery configuration: only the CELERY_* Django settings, nothing else.

Celery shows its whole configuration to anyone who may inspect a worker (Flower's worker page,
`celery inspect conf`). Given all of Django's settings it would show them too, censoring only
names it knows to hide: a node URL with an API key in its path (ETH_RPC_URL) would be shown in
full. So the app reads this module, which holds the CELERY_ settings and nothing more.
"""

from django.conf import settings

globals().update({name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")})
