"""gunicorn's threaded worker, changed so that a slow client costs one thread and never more.

gunicorn's own gthread worker keeps accepting connections while all its threads are busy (up to
worker_connections, 1000) and queues them behind the busy threads, so a real IPN that lands on a
worker busy with slow clients waits for them; and when worker_connections is lowered to the
number of threads, the last connection it accepted is not even polled until a thread frees up.
This worker instead:

- listens only while it holds fewer connections than it has threads, so every connection it
  accepts gets a thread at once, and the kernel hands the others to a worker with room;
- keeps polling the connections it holds while full, and wakes as soon as a thread finishes;
- drops a connection that sends nothing for FIRST_BYTE_TIMEOUT seconds after connecting (it
  would hold a slot without a thread), and a request that stalls READ_TIMEOUT seconds between two
  reads (in its headers: closed with a warning line, where gunicorn logs a traceback; in its body:
  the IPN view answers 408);
- answers 400, not gunicorn's 501, to a transfer coding it does not know.

- sheds load: while all its threads are busy, a connection still waiting SHED_AFTER seconds
  later (no worker with room has taken it) is accepted by the loop itself and answered a canned
  `503` with `Retry-After: 1` and `Connection: close`, without Django and without a thread, so a
  saturated server says so in milliseconds instead of queueing connections for seconds (the
  sender, NOWPayments, retries). The listen backlog is bounded too (gunicorn.conf.py).

The reverse proxy in front (docs/deployment.md) buffers whole request bodies, so in production slow clients
reach the proxy, not us; this keeps the same promise without it. Written for gunicorn 23.0.0
(pinned): it reuses that version's ThreadWorker internals.
"""

import contextlib
import errno
import os
import selectors
import socket
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.http.errors import InvalidHeader, UnsupportedTransferCoding
from gunicorn.workers.gthread import TConn, ThreadWorker

FIRST_BYTE_TIMEOUT = float(os.environ.get("GUNICORN_FIRST_BYTE_TIMEOUT", "5"))
READ_TIMEOUT = float(os.environ.get("GUNICORN_READ_TIMEOUT", "10"))
# How long a connection may wait for a thread before it is answered 503 (other workers with room
# get it first meanwhile).
SHED_AFTER = float(os.environ.get("GUNICORN_SHED_AFTER_SECONDS", "0.05"))
# A shed connection is kept this long (reading and discarding what the client still sends) so
# that closing it does not reset the connection before the client has read the 503.
SHED_LINGER = 1.0
SHED_BODY = b'{"error": "temporarily_unavailable"}'
SHED_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(SHED_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n" + SHED_BODY
)


class BoundedThreadWorker(ThreadWorker):
    def init_process(self) -> None:
        self._listen_mode: str | None = None
        self._shed_at: float | None = None
        self._lingering: dict[socket.socket, float] = {}
        self._shed_count = 0
        self._shed_logged_at = 0.0
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        super().init_process()

    def run(self) -> None:
        for sock in self.sockets:
            sock.setblocking(False)
        self._listeners = [(sock, partial(self.accept, sock.getsockname())) for sock in self.sockets]
        self.poller.register(self._wake_read, selectors.EVENT_READ, self._drain_wake)
        while self.alive:
            self.notify()
            self._update_listening()
            wait = 1.0 if self._shed_at is None else min(1.0, max(0.0, self._shed_at - time.monotonic()))
            for key, _ in self.poller.select(wait):
                key.data(key.fileobj)
            done = futures.wait(self.futures, timeout=0, return_when=futures.FIRST_COMPLETED).done
            for future in done:
                self.futures.remove(future)
            if not self.is_parent_alive():
                break
            # Connections that sent nothing in time (kept in _keep with their deadline).
            self.murder_keepalived()
            self._shed_if_still_full()
            self._close_lingering(time.monotonic())
        self.tpool.shutdown(False)
        self.poller.close()
        for sock in self.sockets:
            sock.close()
        futures.wait(self.futures, timeout=self.cfg.graceful_timeout)

    def _update_listening(self) -> None:
        """Listen to accept while there is room; when full, to notice a waiting connection; then,
        for SHED_AFTER, not at all (other workers may take it)."""
        if self.nr_conns < self.cfg.threads:
            self._shed_at = None
            mode: str | None = "accept"
        else:
            mode = "watch" if self._shed_at is None else None
        if mode == self._listen_mode:
            return
        with self._lock:
            for sock, acceptor in self._listeners:
                if self._listen_mode is not None:
                    self.poller.unregister(sock)
                if mode == "accept":
                    self.poller.register(sock, selectors.EVENT_READ, acceptor)
                elif mode == "watch":
                    self.poller.register(sock, selectors.EVENT_READ, self._waiting_while_full)
        self._listen_mode = mode

    def _waiting_while_full(self, listener: Any) -> None:
        self._shed_at = time.monotonic() + SHED_AFTER
        self._update_listening()

    def _shed_if_still_full(self) -> None:
        if self._shed_at is None or time.monotonic() < self._shed_at:
            return
        self._shed_at = None
        if self.nr_conns < self.cfg.threads:
            return
        shed = 0
        for sock in self.sockets:
            while shed < 256:  # what waits now; later arrivals wait another SHED_AFTER
                try:
                    client, _ = sock.accept()
                except OSError:
                    break  # nothing waiting (EAGAIN), or taken meanwhile by a worker with room
                self._answer_unavailable(client)
                shed += 1
        self._shed_count += shed
        now = time.monotonic()
        if self._shed_count and now - self._shed_logged_at >= 1.0:
            self.log.warning("all %d threads busy: answered 503 to %d connections", self.cfg.threads, self._shed_count)
            self._shed_count, self._shed_logged_at = 0, now

    def _answer_unavailable(self, client: socket.socket) -> None:
        client.setblocking(False)
        try:
            client.send(SHED_RESPONSE)  # a fresh socket's send buffer holds it whole
            client.shutdown(socket.SHUT_WR)
        except OSError:
            client.close()
            return
        # Read and drop what the client sends until it closes (or SHED_LINGER): closing with
        # unread data would send a reset that can destroy the 503 before the client reads it.
        self._lingering[client] = time.monotonic() + SHED_LINGER
        with self._lock:
            self.poller.register(client, selectors.EVENT_READ, self._drain_lingering)

    def _drain_lingering(self, client: Any) -> None:
        try:
            if client.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._forget_lingering(client)

    def _close_lingering(self, now: float) -> None:
        for client, deadline in list(self._lingering.items()):
            if deadline <= now:
                self._forget_lingering(client)

    def _forget_lingering(self, client: socket.socket) -> None:
        with self._lock:
            self.poller.unregister(client)
        del self._lingering[client]
        client.close()

    def _drain_wake(self, fileobj: Any) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass

    def accept(self, server: Any, listener: Any) -> None:
        if self.nr_conns >= self.cfg.threads:
            return  # full since this event was reported; another worker or the next round takes it
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = TConn(self.cfg, sock, client, server)
        conn.timeout = time.time() + FIRST_BYTE_TIMEOUT
        self.nr_conns += 1
        with self._lock:
            self._keep.append(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))
        self._update_listening()

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        with self._lock:
            self.poller.unregister(client)
            try:
                self._keep.remove(conn)
            except ValueError:
                return  # timed out meanwhile
        self.enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        # A recv that waits longer than this raises, which frees the thread.
        conn.sock.settimeout(READ_TIMEOUT)
        if not isinstance(conn.parser, _StalledHeadersEndTheConnection):
            conn.parser = _StalledHeadersEndTheConnection(conn.parser, self.log, conn.client)
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        if isinstance(exc, UnsupportedTransferCoding):
            # gunicorn answers 501 to a transfer coding it does not know (RFC 9112 says "should"):
            # a body we cannot read is the sender's error, a 400 like any other malformed request.
            exc = InvalidHeader(f"Transfer-Encoding: {exc.hdr}")
        super().handle_error(req, client, addr, exc)

    def finish_request(self, fs: Any) -> None:
        super().finish_request(fs)
        with contextlib.suppress(BlockingIOError):  # a full pipe has woken the loop already
            os.write(self._wake_write, b".")  # a thread is free: stop waiting in select


class _StalledHeadersEndTheConnection:
    """gunicorn's request parser, except that a client which stops sending in the middle of its
    request line or headers ends the connection with a warning line. gunicorn would log the read's
    TimeoutError with a traceback as a socket error ("Socket error processing request."). A stall
    in the body is the application's to answer (408)."""

    def __init__(self, parser: Any, log: Any, client: Any) -> None:
        self.parser = parser
        self.log = log
        self.client = client

    def __iter__(self) -> "_StalledHeadersEndTheConnection":
        return self

    def __next__(self) -> Any:
        try:
            return next(self.parser)
        except TimeoutError:
            self.log.warning("request headers from %s stalled for %ss: connection closed", self.client, READ_TIMEOUT)
            raise StopIteration from None  # gunicorn closes the connection, and says so at debug level
