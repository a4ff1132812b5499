from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .intake import IncomingIpn, receive_ipn


@csrf_exempt  # authenticated by the HMAC signature, not a session
@require_POST
def nowpayments_ipn(request: HttpRequest) -> JsonResponse:
    limit = settings.IPN_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    too_large = declared.isdigit() and int(declared) > limit
    raw_body = b"" if too_large else request.read(limit + 1)
    too_large = too_large or len(raw_body) > limit
    ipn = IncomingIpn(
        raw_body=raw_body[:limit],
        signature=request.headers.get("x-nowpayments-sig"),
        remote_addr=request.META.get("REMOTE_ADDR"),
        too_large=too_large,
    )
    response = receive_ipn(ipn)
    return JsonResponse(response.body, status=response.http_status)
