"""python -m infra.local.nodeagent --kubeconfig NODE=PATH ... [--kubelet-port PORT]

Registers each NODE (infra/local/nodeagent/nodes.py: local-node, local-spot-node), speaking
as that node through its kubeconfig, and keeps them alive until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading

from infra.local.nodeagent.nodes import NODES, Node
from shared.logs import configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", action="append", default=[], metavar="NODE=PATH")
    parser.add_argument("--kubelet-port", type=int, default=10250)
    args = parser.parse_args()
    configs = dict(item.split("=", 1) for item in args.kubeconfig)
    unknown = set(configs) - {spec.name for spec in NODES}
    if unknown or len(configs) != len(NODES):
        parser.error(f"give one --kubeconfig for each of {[spec.name for spec in NODES]}")
    configure("INFO")
    from kubernetes import config

    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    nodes = [
        Node(spec, config.new_client_from_config(configs[spec.name]), args.kubelet_port)
        for spec in NODES
    ]
    for node in nodes:
        node.start()
    print("nodes registered", flush=True)
    stopped.wait()
    for node in nodes:
        node.stop()


if __name__ == "__main__":
    main()
