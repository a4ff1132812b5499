"""Regenerates the committed signature vectors, one file per documented form, each made by that
form's own language and serialiser (never by our implementation):

    vectors.json          sortObject   node nowpayments_reference.js sortObject
    vectors_replacer.json replacer     node nowpayments_reference.js replacer
    vectors_php.json      php          php nowpayments_reference.php (Debian's php-cli)
    vectors_python.json   python       python3 nowpayments_reference.py (standard library only)

from the bodies in bodies.json. Run it from the repository root after changing bodies.json:

    python3 tests/signature_vectors/generate_vectors.py

It needs node and php; the tests only read what it wrote, so CI needs neither. A body a language
cannot sign (PHP refuses a lone surrogate) is left out of that language's file.
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SECRET = "test-vector-secret"
FORMS = {
    "vectors.json": ["node", str(HERE / "nowpayments_reference.js"), "sortObject"],
    "vectors_replacer.json": ["node", str(HERE / "nowpayments_reference.js"), "replacer"],
    "vectors_php.json": ["php", str(HERE / "nowpayments_reference.php")],
    "vectors_python.json": [sys.executable, str(HERE / "nowpayments_reference.py")],
}


def main() -> None:
    bodies = json.loads((HERE / "bodies.json").read_text())["bodies"]
    lines = "".join(json.dumps({"secret": SECRET, "body": body}) + "\n" for body in bodies)
    for file_name, command in FORMS.items():
        result = subprocess.run(command, input=lines.encode(), capture_output=True, check=True, timeout=120)
        answers = [json.loads(line) for line in result.stdout.decode("utf-8", "surrogatepass").split("\n") if line]
        assert len(answers) == len(bodies), (file_name, result.stderr)
        vectors = [
            {"body": body, "canonical": answer["canonical"], "signature": answer["signature"]}
            for body, answer in zip(bodies, answers, strict=True)
            if "error" not in answer
        ]
        generated_by = " ".join(Path(part).name if "/" in part else part for part in command)
        document = {"secret": SECRET, "generated_by": generated_by, "vectors": vectors}
        (HERE / file_name).write_text(json.dumps(document, indent=1) + "\n")
        print(f"{file_name}: {len(vectors)} of {len(bodies)} bodies")


if __name__ == "__main__":
    main()
