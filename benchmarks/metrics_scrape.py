"""/metrics as Prometheus scrapes it: gunicorn with the production settings and gunicorn.conf.py on
a database you name (seeded at scale: `manage.py seed_scale`, or your own), the bearer token, one
scrape at a time; prints the latency of each (warm: the first scrapes are not counted), p50/p95/max,
the size of the answer, `promtool check metrics` on it when promtool is installed, and the load
average. It only reads the database.

    .venv/bin/python benchmarks/metrics_scrape.py --database-url postgres://postgres@127.0.0.1:5432/pgp_scale
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, token: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 (http://127.0.0.1)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own loopback server)
        body = response.read()
    return time.perf_counter() - started, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    port, token = free_port(), secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgp_project.settings.production",
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "NOWPAYMENTS_IPN_SECRET": secrets.token_urlsafe(24),
        "PGP_METRICS_TOKEN": token,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DJANGO_STATIC_ROOT": tempfile.mkdtemp(prefix="pgp-metrics-static-"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "ERROR",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "pgp_project.wsgi"], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(300):
            try:
                scrape(url, token)
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(args.warmup):
            scrape(url, token)
        times, body = [], b""
        for _ in range(args.scrapes):
            elapsed, body = scrape(url, token)
            times.append(elapsed * 1000)
        ordered = sorted(times)
        result: dict[str, object] = {
            "scrapes": len(times),
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1),
            "max_ms": round(ordered[-1], 1),
            "bytes": len(body),
            "samples": sum(1 for line in body.decode().splitlines() if line and not line.startswith("#")),
            "loadavg": Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "",
        }
        promtool = shutil.which("promtool")
        if promtool:
            check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
            result["promtool_check_metrics"] = (check.stdout + check.stderr).decode().strip() or "clean"
        print(json.dumps(result, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
