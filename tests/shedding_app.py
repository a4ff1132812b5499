"""A WSGI app for the load-shedding test: answers after ?sleep= seconds."""

import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs


def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("sleep", ["0"])[0])
    time.sleep(min(seconds, 10))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]
