"""The marker for failures that a later retry can cure (a node or an API that is down or slow,
a rate limit). Adapters raise subclasses of it; the kernel's task wrapper retries them with
backoff and never needs to know which outside system failed."""


class TransientError(Exception):
    """Try again later. `retry_after` (seconds), when the other side said how long to wait."""

    retry_after: float | None = None

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
