<?php
// NOWPayments' documented PHP check, verbatim in behaviour: tksort (ksort at every depth), then
// json_encode($request_data, JSON_UNESCAPED_SLASHES), then hash_hmac("sha512", ..., trim($secret)).
// Source: NOWPayments API, "Instant Payments Notifications", "Example of comparing signed strings in
// PHP" (https://documenter.getpostman.com/view/7907941/2s93JusNJt).
// Reads JSON lines {"secret", "body"} on stdin and writes {"canonical", "signature"} lines (or
// {"error"} where PHP cannot sign the body), the protocol of nowpayments_reference.js.
// Run by generate_vectors.py with Debian's php-cli (PHP 8.2); CI only reads its committed output.

function tksort(&$array)
{
    ksort($array);
    foreach (array_keys($array) as $k) {
        if (gettype($array[$k]) == "array") {
            tksort($array[$k]);
        }
    }
}

while (($line = fgets(STDIN)) !== false) {
    if (trim($line) === '') {
        continue;
    }
    $input = json_decode($line, true);
    $request_data = is_array($input) ? json_decode($input['body'], true) : null;
    if (!is_array($request_data)) {
        echo json_encode(['error' => 'json_decode: ' . json_last_error_msg()]), "\n";
        continue;
    }
    tksort($request_data);
    $sorted_request_json = json_encode($request_data, JSON_UNESCAPED_SLASHES);
    if ($sorted_request_json === false) {
        echo json_encode(['error' => 'json_encode: ' . json_last_error_msg()]), "\n";
        continue;
    }
    $hmac = hash_hmac("sha512", $sorted_request_json, trim($input['secret']));
    echo json_encode(['canonical' => $sorted_request_json, 'signature' => $hmac]), "\n";
}
