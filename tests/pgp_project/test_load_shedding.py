"""Load shedding: a saturated gunicorn answers 503 with Retry-After at once instead
of queueing the connection, and serves again as soon as a thread is free. Runs the production
gunicorn.conf.py (BoundedThreadWorker) with 1 worker of 2 threads around a slow WSGI app."""

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def small_server() -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "tests.shedding_app:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline, "gunicorn did not start"
            try:
                assert get(port, 0)[0] == 200
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.communicate(timeout=30)


def get(port: int, sleep: float) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?sleep={sleep}", timeout=15) as response:
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        status, headers = error.code, dict(error.headers)
    return status, headers, time.monotonic() - started


def test_a_saturated_worker_answers_503_with_retry_after_within_a_second(small_server: int):
    slow = [threading.Thread(target=get, args=(small_server, 3)) for _ in range(2)]
    for thread in slow:
        thread.start()
    time.sleep(0.5)  # both threads busy
    status, headers, seconds = get(small_server, 0)
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert headers["Connection"] == "close"
    assert seconds < 1.0
    for thread in slow:
        thread.join()
    # Free again: served normally.
    assert get(small_server, 0)[0] == 200


def test_with_a_thread_free_nothing_is_shed(small_server: int):
    slow = threading.Thread(target=get, args=(small_server, 2))
    slow.start()
    time.sleep(0.3)
    results = [get(small_server, 0)[0] for _ in range(20)]
    slow.join()
    assert results == [200] * 20


def test_many_at_once_all_get_an_answer_quickly(small_server: int):
    """20 clients against 2 threads busy for a second: every client has its answer, 200 or 503,
    long before a queue of that many would drain."""
    results: list[tuple[int, dict[str, str], float]] = []
    threads = [threading.Thread(target=lambda: results.append(get(small_server, 1))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _, _ in results)
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 2
    assert statuses.count(503) >= 10
    assert max(seconds for status, _, seconds in results if status == 503) < 1.0
