"""NOWPayments' documented Python check, verbatim in behaviour: the body as json.loads reads it, then
json.dumps(message, separators=(',', ':'), sort_keys=True), then HMAC-SHA512.
Source: NOWPayments API, "Instant Payments Notifications", "Example comparing signed signatures in
Python" (https://documenter.getpostman.com/view/7907941/2s93JusNJt).

Reads JSON lines {"secret", "body"} on stdin and writes {"canonical", "signature"} lines, the
protocol of nowpayments_reference.js. Standard library only: this is the serialiser the vectors
must come from, not ours.
"""

import hashlib
import hmac
import json
import sys

for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    message = json.loads(request["body"])
    sorted_msg = json.dumps(message, separators=(",", ":"), sort_keys=True)
    digest = hmac.new(str(request["secret"]).encode(), f"{sorted_msg}".encode(), hashlib.sha512)
    sys.stdout.write(json.dumps({"canonical": sorted_msg, "signature": digest.hexdigest()}) + "\n")
