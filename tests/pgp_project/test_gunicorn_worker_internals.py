"""pgp_project/gunicorn_worker.py subclasses gunicorn's threaded worker and reuses its internals
(gunicorn has no supported hook for "listen only while a thread is free" or for shedding load
before Django). We keep it, pinned to gunicorn 23.0.0, rather than give up the slow-client and
load-shedding behaviour its tests prove (tests/pgp_project/test_load_shedding.py). This canary fails loudly,
naming what moved, the moment an upgrade changes a method or attribute the worker relies on;
the behaviour tests then say whether it still holds."""

import inspect
import re
from pathlib import Path

import gunicorn
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import TConn, ThreadWorker

from ..conftest import PROJECT_ROOT

# What the worker calls or overrides on ThreadWorker (and gunicorn's base Worker) ...
WORKER_METHODS = (
    "init_process",
    "notify",
    "is_parent_alive",
    "murder_keepalived",
    "enqueue_req",
    "handle",
    "handle_error",
    "finish_request",
)
# ... the worker state it reads and writes ...
WORKER_STATE = ("poller", "futures", "nr_conns", "tpool", "_lock", "alive", "sockets")
# ... and what it reads of a connection.
CONNECTION_STATE = ("client", "parser", "sock", "timeout")


def test_gunicorn_is_the_version_the_worker_was_written_for() -> None:
    pinned = re.search(r"^gunicorn==(\S+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned is not None
    assert gunicorn.__version__ == pinned.group(1) == "23.0.0", (
        "pgp_project/gunicorn_worker.py reuses gunicorn 23.0.0's ThreadWorker internals: check them against the "
        "new version (this file lists them), run tests/pgp_project/test_load_shedding.py, then update the pin here"
    )


def test_every_internal_the_worker_relies_on_is_still_there() -> None:
    source = inspect.getsource(ThreadWorker) + inspect.getsource(Worker)
    missing = [name for name in WORKER_METHODS if not callable(getattr(ThreadWorker, name, None))]
    missing += [f"self.{name}" for name in WORKER_STATE if f"self.{name}" not in source]
    connection = inspect.getsource(TConn)
    missing += [f"TConn.{name}" for name in CONNECTION_STATE if f"self.{name}" not in connection]
    assert not missing, f"gunicorn's threaded worker no longer has {missing}: pgp_project/gunicorn_worker.py needs work"


def test_the_worker_uses_nothing_of_gunicorn_this_canary_does_not_list() -> None:
    """A new use of a private internal in the worker must be added to the lists above."""
    worker = (Path(PROJECT_ROOT) / "pgp_project" / "gunicorn_worker.py").read_text()
    used = set(re.findall(r"super\(\)\.(\w+)\(", worker))
    assert used <= set(WORKER_METHODS), sorted(used - set(WORKER_METHODS))
