"""Flower's configuration: read by `celery -A pgp_project flower` from its working directory (the
project's root; flower's default `--conf=flowerconfig.py`).

Flower shows every task's arguments and can revoke tasks and shut workers down: it is never open.
It refuses to start without an authentication (FLOWER_BASIC_AUTH=user:password, or FLOWER_AUTH
with OAuth), binds to 127.0.0.1 unless told otherwise, and its /metrics (which Flower 2.0.1 serves
to anyone) asks for the same authentication as every other page.
"""

import sys

from flower.views.monitor import Metrics
from tornado.options import options
from tornado.web import authenticated

# Environment (FLOWER_*) and command line are parsed before this file is read: keep theirs.
address = options.address or "127.0.0.1"

if not (options.basic_auth or options.auth):
    sys.exit(
        "Flower refuses to start without authentication: set FLOWER_BASIC_AUTH=user:password "
        "(or FLOWER_AUTH with OAuth). See docs/deployment.md."
    )

# Flower's own handler has no @authenticated: basic auth (or the OAuth session) for it too.
Metrics.get = authenticated(Metrics.get)
