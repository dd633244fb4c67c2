"""python -m infra.local.nodeagent --kubeconfig NODE=PATH ... --data-dir DIR
       --serving-cert PEM --serving-key PEM --client-ca PEM
       [--kubelet-port PORT] [--speed F] [--stager-image IMAGE] [--simulated-image IMAGE]...

Registers each NODE (nodes.py: local-node, local-spot-node), speaking as that node through
its kubeconfig, keeps them alive, runs the pods bound to them (pods.py) and serves their
logs to the API server (logs.py) until SIGTERM or SIGINT, which stops their containers
too. --speed divides the KUBESIM_* simulated durations and the grace periods (the
local cloud's KUBESIM_SPEED). Each --simulated-image (any tag) is simulated without
KUBESIM_* variables; an image that is neither that, the stager, a stand-in nor given KUBESIM_*
variables fails to pull (the local cloud's LOCAL_SIMULATED_IMAGES)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from infra.local.nodeagent.clock import Clock
from infra.local.nodeagent.logs import LogServer
from infra.local.nodeagent.nodes import NODES, Node
from infra.local.nodeagent.pods import PodRunner
from infra.local.nodeagent.runtime import Runtime
from shared.logs import configure

STOP_SECONDS = 2.0  # the pods' containers get this long after SIGTERM when the agent stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", action="append", default=[], metavar="NODE=PATH")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--kubelet-port", type=int, default=10250)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--stager-image")
    parser.add_argument("--simulated-image", action="append", default=[], metavar="IMAGE")
    parser.add_argument("--serving-cert", type=Path, required=True, help="for 127.0.0.1")
    parser.add_argument("--serving-key", type=Path, required=True)
    parser.add_argument("--client-ca", type=Path, required=True, help="the API server's CA")
    args = parser.parse_args()
    configs = dict(item.split("=", 1) for item in args.kubeconfig)
    if set(configs) != {spec.name for spec in NODES}:
        parser.error(f"give one --kubeconfig for each of {[spec.name for spec in NODES]}")
    configure("INFO")
    from kubernetes import config

    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    clock = Clock(args.speed)
    runtime = Runtime(clock, args.stager_image, tuple(args.simulated_image))
    nodes, runners = [], []
    for spec in NODES:
        api = config.new_client_from_config(configs[spec.name])
        nodes.append(Node(spec, api, args.kubelet_port))
        runners.append(PodRunner(spec.name, api, args.data_dir / spec.name, runtime, clock))
    for node in nodes:
        node.start()
    for runner in runners:
        runner.start()
    logs = LogServer(
        args.kubelet_port,
        runners,
        cert=args.serving_cert,
        key=args.serving_key,
        client_ca=args.client_ca,
    )
    logs.start()
    print("nodes registered", flush=True)
    stopped.wait()
    logs.stop()
    for runner in runners:
        runner.stop(STOP_SECONDS)
    for node in nodes:
        node.stop()


if __name__ == "__main__":
    main()
