"""An IPN's body read off the WSGI server: bounded, and whole or refused.

A client can break a body in three ways, and each is a refusal the intake records, never a 500:
it stops sending (the server's read times out: 408), it closes early (fewer bytes than its
Content-Length, or a chunked body without its last chunk: 400), or it breaks the chunked framing
(a chunk size that is not hex, a chunk without its CRLF, malformed trailers: 400). The server
raises these while the view reads the body, so they are caught here.
"""

from dataclasses import dataclass

from django.http import HttpRequest
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, ParseException

from .intake import UnreadableBody


@dataclass(frozen=True)
class ReadBody:
    raw: bytes  # at most limit + 1 bytes
    too_large: bool = False
    length_unknown: bool = False
    unreadable: UnreadableBody | None = None


def read_ipn_body(request: HttpRequest, limit: int) -> ReadBody:
    """Django reads exactly Content-Length bytes, so a chunked body (no Content-Length) would read
    as empty. A server that de-chunks and ends the input (gunicorn sets `wsgi.input_terminated`)
    lets us read it directly, still bounded; on any other server a chunked body is refused (411)."""
    text = request.META.get("CONTENT_LENGTH") or ""
    # ASCII digits only: "²".isdigit() holds, and int() refuses it.
    declared = int(text) if text.isascii() and text.isdigit() else None
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not text and not request.META.get("wsgi.input_terminated"):
        return ReadBody(b"", length_unknown=True)
    if declared is not None and declared > limit:
        return ReadBody(b"", too_large=True)  # refused unread
    # A chunked body is read off the server's input directly: Django would read it as empty.
    stream = request.META["wsgi.input"] if chunked and not text else request
    try:
        body = stream.read(limit + 1)
    except (OSError, ParseException) as error:
        return ReadBody(b"", unreadable=_why_unreadable(error))
    if declared is not None and len(body) < declared:
        return ReadBody(body, unreadable=UnreadableBody.INCOMPLETE)  # the client closed early
    return ReadBody(body, too_large=len(body) > limit)


def _why_unreadable(error: Exception) -> UnreadableBody:
    # Django wraps the server's OSError in UnreadablePostError (an OSError too), keeping it as the cause.
    cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
    if isinstance(cause, TimeoutError):
        return UnreadableBody.TIMED_OUT
    if isinstance(cause, (InvalidChunkSize, ChunkMissingTerminator, ParseException)):
        return UnreadableBody.BROKEN_FRAMING
    # NoMoreData: the client closed before a chunked body's last chunk; any other OSError: the
    # connection was reset or failed under the read.
    return UnreadableBody.INCOMPLETE
