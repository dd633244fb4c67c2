"""`python -m infra.local.kubesim`: serve the simulated Kubernetes API on loopback."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
import threading
from pathlib import Path

from infra.local.kubesim import kubeconfig
from infra.local.kubesim.app import App
from infra.local.kubesim.clock import log, set_log_level
from infra.local.kubesim.server import KubesimServer
from infra.local.procs import StopSignal


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local.kubesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--kubeconfig", required=True, type=Path, help="where to write it")
    parser.add_argument("--data-dir", required=True, type=Path, help="volumes and logs")
    parser.add_argument(
        "--speed",
        type=float,
        default=float(os.environ.get("KUBESIM_SPEED") or 1.0),
        help="divides every simulated duration (env KUBESIM_SPEED, default 1)",
    )
    parser.add_argument(
        "--stager-image",
        default=os.environ.get("STAGER_IMAGE") or None,
        help="containers of this image run for real on the host (env STAGER_IMAGE)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KUBESIM_TOKEN") or secrets.token_hex(16),
        help="bearer token clients must send (env KUBESIM_TOKEN, default random)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("KUBESIM_LOG_LEVEL", "INFO"),
        help="DEBUG logs requests",
    )
    return parser.parse_args(argv)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    set_log_level(args.log_level)
    if not _loopback(args.host):
        log("ERROR", f"refusing to bind {args.host}: kubesim serves loopback addresses only")
        return 2
    if args.speed <= 0:
        log("ERROR", "--speed must be positive")
        return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    app = App(args.data_dir.resolve(), args.speed, args.stager_image, args.token)
    server = KubesimServer((args.host, args.port), app)
    url = f"http://{server.address_text}"
    kubeconfig.write(args.kubeconfig, url, args.token)
    app.start()
    # A handler that takes no lock (a second SIGTERM may come while the first is handled):
    # the server runs on a thread, the main thread waits for the stop.
    stopping = StopSignal().install()
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="server", daemon=True
    )
    log(
        "INFO",
        f"kubesim serving {url}",
        url=url,
        kubeconfig=str(args.kubeconfig),
        data_dir=str(args.data_dir),
        speed=args.speed,
        stager_image=args.stager_image,
    )
    serving.start()
    try:
        stopping.wait()
    finally:
        server.shutdown()
        app.stop()
        server.server_close()
        log("INFO", "kubesim stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
