"""Start the node agent for a control plane: a kubeconfig for each node (its own identity,
system:node:<name>), the kubelet port's serving certificate from the plane's CA, and the
CA the API server's client certificate is checked against."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.local.controlplane.cluster import ControlPlane
from infra.local.nodeagent.nodes import NODES
from infra.local.procs import ServerProcess, free_port, spawn, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_SECONDS = 60.0


def start_agent(
    plane: ControlPlane, folder: Path, *, speed: float, stager_image: str
) -> ServerProcess:
    """The node agent, its data and log in `folder`, once its nodes are registered."""
    argv = [sys.executable, "-m", "infra.local.nodeagent", f"--kubelet-port={free_port()}"]
    argv += [f"--data-dir={folder / 'data'}", f"--speed={speed}"]
    argv += [f"--stager-image={stager_image}"]
    serving = plane.authority.issue("kubelet-serving", "local-node-agent", server=True)
    argv += [f"--serving-cert={serving.cert}", f"--serving-key={serving.key}"]
    argv += [f"--client-ca={plane.authority.pair.cert}"]
    for spec in NODES:
        identity = f"system:node:{spec.name}"
        config = plane.kubeconfig_for(f"node-{spec.name}", identity, ("system:nodes",))
        argv.append(f"--kubeconfig={spec.name}={config}")
    agent = spawn("nodeagent", argv, log_dir=folder, cwd=REPO_ROOT)
    try:
        wait_until_ready(agent, lambda: "nodes registered" in agent.log_tail(), READY_SECONDS)
    except BaseException:
        agent.stop()
        raise
    return agent
