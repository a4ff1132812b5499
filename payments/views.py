from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .intake import IncomingIpn, receive_ipn


@csrf_exempt  # authenticated by the HMAC signature, not a session
@require_POST
def nowpayments_ipn(request: HttpRequest) -> JsonResponse:
    limit = settings.IPN_MAX_BODY_BYTES
    raw_body, too_large, length_unknown = _read_body(request, limit)
    ipn = IncomingIpn(
        raw_body=raw_body[:limit],
        signature=request.headers.get("x-nowpayments-sig"),
        remote_addr=request.META.get("REMOTE_ADDR"),
        too_large=too_large,
        length_unknown=length_unknown,
    )
    response = receive_ipn(ipn)
    return JsonResponse(response.body, status=response.http_status)


def _read_body(request: HttpRequest, limit: int) -> tuple[bytes, bool, bool]:
    """(at most limit + 1 bytes of the body, too large?, length unknowable?).

    Django reads exactly Content-Length bytes, so a chunked body (no Content-Length) would read as
    empty. A server that de-chunks and ends the input (gunicorn sets `wsgi.input_terminated`) lets
    us read it directly, still bounded; on any other server a chunked body is refused (411)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not declared:
        if not request.META.get("wsgi.input_terminated"):
            return b"", False, True
        body = request.META["wsgi.input"].read(limit + 1)
        return body, len(body) > limit, False
    if declared.isdigit() and int(declared) > limit:
        return b"", True, False  # refused unread
    body = request.read(limit + 1)
    return body, len(body) > limit, False
