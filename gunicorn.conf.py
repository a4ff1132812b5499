"""gunicorn's configuration, read from the working directory (the project's root) by default:
`gunicorn pgp_project.wsgi`.

Threads, not sync workers: a sync worker is held by one client for as long as that client takes
to send its body, so one slow client delayed a real IPN by 31 s. Here each worker has a pool of
threads and takes no more connections than it has threads (pgp_project/gunicorn_worker.py), so a
request is never queued behind slow clients inside a worker while another worker has a free
thread. The reverse proxy in front (docs/deployment.md) buffers whole request bodies and cuts slow ones; this
bounds what reaches us without it.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "pgp_project.gunicorn_worker.BoundedThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# The proxy keeps the clients' connections alive; each connection to us carries one request (an
# idle kept-alive connection would hold one of the worker's thread-sized connection slots).
keepalive = 0
# Connections the kernel queues for us before refusing more (gunicorn's default is 2048). When all
# threads are busy the worker answers 503 + Retry-After to what waits (gunicorn_worker.py), so the
# queue only bridges the worker's next loop turn; a long one would only hold senders for seconds.
backlog = int(os.environ.get("GUNICORN_BACKLOG", "128"))
# Seconds without a heartbeat before a worker is killed, and for in-flight requests at a restart.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# An IPN is a short POST: small request lines and headers are plenty.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
accesslog = "-"
