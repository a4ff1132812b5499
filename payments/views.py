from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .intake import IncomingIpn, receive_ipn
from .ipn_body import read_ipn_body


@csrf_exempt  # authenticated by the HMAC signature, not a session
@require_POST
def nowpayments_ipn(request: HttpRequest) -> JsonResponse:
    limit = settings.IPN_MAX_BODY_BYTES
    body = read_ipn_body(request, limit)
    ipn = IncomingIpn(
        raw_body=body.raw[:limit],
        signature=request.headers.get("x-nowpayments-sig"),
        remote_addr=request.META.get("REMOTE_ADDR"),
        too_large=body.too_large,
        length_unknown=body.length_unknown,
        unreadable=body.unreadable,
    )
    response = receive_ipn(ipn)
    return JsonResponse(response.body, status=response.http_status)
