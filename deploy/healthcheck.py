"""Container healthcheck for the Sightline image; exit 0 = healthy, 1 = not.

    python /app/deploy/healthcheck.py api --config configs/production.yaml      # the API process
    python /app/deploy/healthcheck.py broker --config configs/production.yaml   # ingest / analyzer / sink

It reads the same config file and SIGHTLINE_* environment as the process it checks, so the probed
port and broker addresses cannot drift from what the process uses.

`api` asks the process itself (`GET /healthz` on api.port). The workers have no HTTP port; `broker`
checks that a bootstrap server accepts TCP connections from inside the container, which is the one
dependency they cannot work without. It cannot see a worker whose loop is stuck; a heartbeat
written by the workers would, and belongs in the CLI (`sightline health`), not here.
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.error
import urllib.request

from configs import ConfigError, Settings, load_settings

WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def api_url(settings: Settings, path: str = "/healthz") -> str:
    host = settings.api.host
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"  # a wildcard bind is reachable on loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api.port}{path}"


def check_api(settings: Settings, timeout_s: float) -> str | None:
    url = api_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap server {item!r} is not HOST:PORT")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def check_broker(settings: Settings, timeout_s: float) -> str | None:
    if not settings.bus.bootstrap:
        return "bus.bootstrap is not set (an embedded broker is not a production setup)"
    problems = []
    for host, port in bootstrap_addresses(settings.bus.bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None  # one reachable server is enough for a Kafka client
        except OSError as exc:
            problems.append(f"{host}:{port}: {exc}")
    return "no bootstrap server reachable: " + "; ".join(problems)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sightline container healthcheck")
    ap.add_argument("what", choices=["api", "broker"])
    ap.add_argument("--config", "-c", default="configs/production.yaml")
    ap.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"unhealthy: config {exc.source}: {'; '.join(exc.errors)}", file=sys.stderr)
        return 1
    try:
        check = check_api if args.what == "api" else check_broker
        problem = check(settings, args.timeout)
    except ValueError as exc:
        problem = str(exc)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
