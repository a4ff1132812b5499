// NOWPayments' documented IPN signatures, verbatim in behaviour, run by the real JavaScript engine so
// that the Python implementation is checked against it, not against our reading of it:
//   sortObject (default): HMAC-SHA512 of JSON.stringify(sortObject(JSON.parse(body))), their current
//     Node example (https://documenter.getpostman.com/view/7907941/2s93JusNJt, "Instant Payments
//     Notifications");
//   replacer: HMAC-SHA512 of JSON.stringify(params, Object.keys(params).sort()), the same page's step
//     5 and the older pages' only example (https://documenter.getpostman.com/view/7907941/S1a32n38).
// Usage: node nowpayments_reference.js [sortObject|replacer]. Reads JSON lines {"secret", "body"} on
// stdin and writes {"canonical", "signature"} lines.
const crypto = require("crypto");
const readline = require("readline");

function sortObject(obj) {
  return Object.keys(obj).sort().reduce((result, key) => {
    result[key] = (obj[key] && typeof obj[key] === "object") ? sortObject(obj[key]) : obj[key];
    return result;
  }, {});
}

const form = process.argv[2] || "sortObject";
const canonicalise = {
  sortObject: (params) => JSON.stringify(sortObject(params)),
  replacer: (params) => JSON.stringify(params, Object.keys(params).sort()),
}[form];
if (!canonicalise) {
  throw new Error(`unknown form ${form}`);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const { secret, body } = JSON.parse(line);
  const canonical = canonicalise(JSON.parse(body));
  const signature = crypto.createHmac("sha512", secret).update(canonical).digest("hex");
  process.stdout.write(JSON.stringify({ canonical, signature }) + "\n");
});
