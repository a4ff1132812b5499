"""Every IPN answered within NOWPayments' 3 seconds, lock waits included.

NOWPayments counts an IPN not answered within 3,000 ms as failed (its help centre, "IPN and how to
set up": "The endpoint shall respond within 3000 ms"). Two limits keep our answer inside it:

- `lock_timeout` (IPN_LOCK_TIMEOUT_MS, set once per connection by the intake): one row-lock wait
  ends with an error, answered 503;
- the answer budget (IPN_ANSWER_BUDGET_MS, counted from the moment the intake starts on the body):
  an IPN can wait on more than one lock (its first-notification write behind a concurrent insert
  of the same payment, then the payment's row lock), and a statement can be slow for reasons
  other than locks. When the budget runs out, the statement the IPN's connection is running is
  cancelled (PostgreSQL's cancel request, as `pg_cancel_backend` would) and no further statement
  starts; its transaction rolls back, and the answer is 503: NOWPayments retries, and nothing was
  recorded in part. (A first notification is written in one statement, its own transaction; on
  the locked path everything is one transaction. A 503 after a payment was written, e.g. on the
  way out, only means a retry, answered as a duplicate.)

The cancel is sent by one watchdog thread per process rather than by `SET statement_timeout`:
a session setting would also cut the admin's requests served later by the same web thread, and a
`SET LOCAL` per IPN would add a statement to every notification (docs/ipn.md, the 3 s answer). Arming
and disarming cost a lock and a heap push; nothing is sent to the database unless the budget runs
out.
"""

import contextlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection


class _Guard:
    """One IPN's claim on its connection until its deadline. `lock` orders the watchdog's cancel
    against the IPN leaving its guarded part: once `disarm` returns, no cancel is sent for it."""

    __slots__ = ("active", "cancel", "fired", "lock")

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.cancel = cancel
        self.active = True
        self.fired = False
        self.lock = threading.Lock()

    def disarm(self) -> None:
        with self.lock:
            self.active = False


class _Watchdog:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: list[tuple[float, int, _Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, deadline: float, cancel: Callable[[], None]) -> _Guard:
        guard = _Guard(cancel)
        with self._condition:
            self._ensure_running()
            heapq.heappush(self._due, (deadline, next(self._order), guard))
            if self._due[0][2] is guard:
                self._condition.notify()
        return guard

    def _ensure_running(self) -> None:
        # A forked process (a pre-forking server) inherits no threads: start one of its own.
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._due.clear()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="ipn-deadline", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._due:
                    self._condition.wait()
                now = time.monotonic()
                due = []
                while self._due and self._due[0][0] <= now:
                    due.append(heapq.heappop(self._due)[2])
                if not due:
                    # At most one wake-up per tick, however many IPNs a second: a cancel is at most
                    # a tick late, well inside the margin the budget leaves under 3 s.
                    self._condition.wait(max(self._due[0][0] - now, _TICK_SECONDS))
                    continue
            for guard in due:
                if guard.active:  # most IPNs disarmed theirs long before: no lock taken for them
                    self._fire(guard)

    @staticmethod
    def _fire(guard: _Guard) -> None:
        with guard.lock:
            if not guard.active:
                return
            guard.active = False
            guard.fired = True
            # A connection closed meanwhile has nothing left to cancel; the watchdog lives on.
            with contextlib.suppress(Exception):
                guard.cancel()


_TICK_SECONDS = 0.02
_watchdog = _Watchdog()


def answer_deadline() -> float:
    """The monotonic time by which this IPN must be answered."""
    return time.monotonic() + settings.IPN_ANSWER_BUDGET_MS / 1000


class BudgetExceeded(Exception):
    """The IPN's answer budget ran out before it was recorded."""


@contextmanager
def within_answer_budget(deadline: float) -> Iterator[None]:
    """Cancel whatever this thread's database connection is running when `deadline` passes (its
    error propagates: a DatabaseError, answered 503), and refuse (BudgetExceeded) to start any
    statement after it."""
    if time.monotonic() >= deadline:
        raise BudgetExceeded

    # A cancel reaching the server between two statements of a transaction is dropped by it (it
    # cancels only a running statement): no statement starts past the deadline either.
    def refuse_past_deadline(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if time.monotonic() >= deadline:
            raise BudgetExceeded
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_past_deadline):
        connection.ensure_connection()
        guard = _watchdog.arm(deadline, connection.connection.cancel)
        try:
            yield
        finally:
            guard.disarm()
