"""The IPN fuzz run against gunicorn with production settings, end to end:

    createdb -h 127.0.0.1 -U postgres pgp_fuzz
    .venv/bin/python benchmarks/ipn_fuzz.py --database-url postgres://postgres@127.0.0.1:5432/pgp_fuzz --count 10000

It migrates the named database (give the run its own: the fuzz's signed cases record payments in
it), starts gunicorn from this checkout with production settings and the committed gunicorn.conf.py
(its log to a file), sends `manage.py fuzz_ipn`'s reproducible corpus through the headers our proxy
adds (Host, X-Forwarded-Proto), then reads gunicorn's log. It prints the answers by status, the
tracebacks and 5xx lines in the log, and what the database holds, as JSON; it fails on any 5xx
answer, broken connection or traceback.

The server's read timeout is shortened (`--read-timeout`, 2 s; 10 s in production) so that the few
cases that stall their body or headers cost seconds, not minutes.
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from ipn_load import free_port  # noqa: E402

HOST = "payouts.example.com"
COUNT = """
from django.db.models import Count
from payments.models import Payment, PaymentEvent, PayoutAccumulation
events = dict(PaymentEvent.objects.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
claims = PaymentEvent.objects.filter(signature_valid=False).exclude(provider_payment_id=None, reported_status="")
print("COUNTS", Payment.objects.count(), PayoutAccumulation.objects.count(), claims.count(), events)
"""


def main() -> None:
    args = parse_args()
    log_path = Path(args.log or tempfile.mkstemp(prefix="pgp-fuzz-gunicorn-", suffix=".log")[1])
    port = free_port()
    env = server_env(args, port)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    with log_path.open("w") as log:
        server = start_gunicorn(env, port, log)
        try:
            fuzz = run_fuzz(args, port, env["NOWPAYMENTS_IPN_SECRET"])
        finally:
            server.terminate()
            server.wait(30)
    command = [re.sub(r"^--secret=.*", "--secret=<the server's>", str(part)) for part in fuzz.args]
    report = {"command": command, "fuzz_exit_code": fuzz.returncode, **read_fuzz_output(fuzz.stdout)}
    report.update(read_log(log_path.read_text(errors="replace")))
    report["database"] = database_counts(manage, env)
    report["gunicorn_log"] = str(log_path)
    print(json.dumps(report, indent=2))
    if fuzz.returncode != 0:
        sys.exit(f"the fuzz failed:\n{fuzz.stdout}\n{fuzz.stderr}")
    if report["tracebacks_in_log"] or report["5xx_in_access_log"]:
        sys.exit("tracebacks or 5xx answers in gunicorn's log")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database of the run's own (it records payments)")
    parser.add_argument("--broker-url", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--read-timeout", type=float, default=2.0, help="GUNICORN_READ_TIMEOUT for the run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--log", default=None, help="where to keep gunicorn's log (default: a temporary file)")
    return parser.parse_args()


def server_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NOWPAYMENTS_", "GUNICORN_"))}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "pgp_project.settings.production",
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "NOWPAYMENTS_IPN_SECRET": secrets.token_urlsafe(24),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "DJANGO_STATIC_ROOT": tempfile.mkdtemp(prefix="pgp-fuzz-static-"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        "GUNICORN_READ_TIMEOUT": str(args.read_timeout),
    }


def start_gunicorn(env: dict[str, str], port: int, log: IO[str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "pgp_project.wsgi"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return server
        time.sleep(0.2)
    server.kill()
    sys.exit("gunicorn did not start")


def run_fuzz(args: argparse.Namespace, port: int, secret: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as var:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "NOWPAYMENTS_"))},
            "DJANGO_SETTINGS_MODULE": "pgp_project.settings.local",
            "PGP_VAR_DIR": var,
        }
        command = [
            sys.executable,
            "manage.py",
            "fuzz_ipn",
            f"--url=http://127.0.0.1:{port}/webhooks/nowpayments/",
            f"--count={args.count}",
            f"--seed={args.seed}",
            f"--concurrency={args.concurrency}",
            f"--secret={secret}",
            f"--header=Host: {HOST}",
            "--header=X-Forwarded-Proto: https",
        ]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def read_fuzz_output(stdout: str) -> dict[str, Any]:
    found = re.search(r"(\d+) bodies in ([\d.]+)s; answers (.*)", stdout)
    if found is None:
        return {"fuzz_output": stdout}
    answers = {status: int(n) for status, n in (part.rsplit(": ", 1) for part in found.group(3).split(", "))}
    among = re.search(r"among them: (.*)", stdout)
    cases = dict(part.rsplit(" ", 1) for part in among.group(1).split(", ")) if among else {}
    return {
        "bodies": int(found.group(1)),
        "seconds": float(found.group(2)),
        "answers": answers,
        "cases_among_them": {family: int(n) for family, n in cases.items()},
    }


def read_log(log: str) -> dict[str, Any]:
    access = re.findall(r'"POST /webhooks/nowpayments/ HTTP/1\.[01]" (\d{3}) ', log)
    by_status: dict[str, int] = {}
    for status in access:
        by_status[status] = by_status.get(status, 0) + 1
    return {
        "tracebacks_in_log": log.count("Traceback (most recent call last)"),
        "5xx_in_access_log": sum(count for status, count in by_status.items() if status.startswith("5")),
        "access_log_by_status": dict(sorted(by_status.items())),
        "stalled_headers_closed": log.count("stalled for"),
    }


def database_counts(manage: list[str], env: dict[str, str]) -> dict[str, Any]:
    output = subprocess.run([*manage, "shell", "-c", COUNT], cwd=ROOT, env=env, check=True, capture_output=True)
    found = re.search(r"COUNTS (\d+) (\d+) (\d+) (.*)", output.stdout.decode())
    assert found, output.stdout
    return {
        "payments": int(found.group(1)),
        "accumulation_rows": int(found.group(2)),
        "unsigned_refusals_claiming_a_payment": int(found.group(3)),
        "events_by_outcome": found.group(4),
    }


if __name__ == "__main__":
    main()
