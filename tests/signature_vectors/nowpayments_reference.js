// NOWPayments' documented IPN signature, verbatim in behaviour: HMAC-SHA512 of
// JSON.stringify(sortObject(JSON.parse(body))). Reads JSON lines {"secret", "body"} on stdin and
// writes {"canonical", "signature"} lines, so the Python implementation is checked against the
// real JavaScript engine, not against our reading of it.
const crypto = require("crypto");
const readline = require("readline");

function sortObject(obj) {
  return Object.keys(obj).sort().reduce((result, key) => {
    result[key] = (obj[key] && typeof obj[key] === "object") ? sortObject(obj[key]) : obj[key];
    return result;
  }, {});
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const { secret, body } = JSON.parse(line);
  const canonical = JSON.stringify(sortObject(JSON.parse(body)));
  const signature = crypto.createHmac("sha512", secret).update(canonical).digest("hex");
  process.stdout.write(JSON.stringify({ canonical, signature }) + "\n");
});
