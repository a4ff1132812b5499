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
  reads.

The reverse proxy in front (README) buffers whole request bodies, so in production slow clients
reach the proxy, not us; this keeps the same promise without it. Written for gunicorn 23.0.0
(pinned): it reuses that version's ThreadWorker internals.
"""

import contextlib
import errno
import os
import selectors
import time
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

FIRST_BYTE_TIMEOUT = float(os.environ.get("GUNICORN_FIRST_BYTE_TIMEOUT", "5"))
READ_TIMEOUT = float(os.environ.get("GUNICORN_READ_TIMEOUT", "10"))


class BoundedThreadWorker(ThreadWorker):
    def init_process(self) -> None:
        self._listening = False
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
            self._listen_while_room()
            for key, _ in self.poller.select(1.0):
                key.data(key.fileobj)
            done = futures.wait(self.futures, timeout=0, return_when=futures.FIRST_COMPLETED).done
            for future in done:
                self.futures.remove(future)
            if not self.is_parent_alive():
                break
            # Connections that sent nothing in time (kept in _keep with their deadline).
            self.murder_keepalived()
        self.tpool.shutdown(False)
        self.poller.close()
        for sock in self.sockets:
            sock.close()
        futures.wait(self.futures, timeout=self.cfg.graceful_timeout)

    def _listen_while_room(self) -> None:
        has_room = self.nr_conns < self.cfg.threads
        if has_room == self._listening:
            return
        with self._lock:
            for sock, acceptor in self._listeners:
                if has_room:
                    self.poller.register(sock, selectors.EVENT_READ, acceptor)
                else:
                    self.poller.unregister(sock)
        self._listening = has_room

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
        self._listen_while_room()

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
        return super().handle(conn)

    def finish_request(self, fs: Any) -> None:
        super().finish_request(fs)
        with contextlib.suppress(BlockingIOError):  # a full pipe has woken the loop already
            os.write(self._wake_write, b".")  # a thread is free: stop waiting in select
