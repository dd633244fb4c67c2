"""Start the node agent for a control plane: a kubeconfig for each node (its own identity,
system:node:<name>), the kubelet port's serving certificate from the plane's CA, and the
CA the API server's client certificate is checked against."""

from __future__ import annotations

import sys
from pathlib import Path

from infra.local.controlplane.cluster import ControlPlane
from infra.local.nodeagent.nodes import NODES
from infra.local.procs import ServerProcess, StopSignal, free_port, spawn, wait_until_ready

REPO_ROOT = Path(__file__).resolve().parents[3]
READY_SECONDS = 60.0


def start_agent(
    plane: ControlPlane,
    folder: Path,
    *,
    speed: float,
    stager_image: str,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
    stop: StopSignal | None = None,
    simulated_images: tuple[str, ...] = (),
) -> ServerProcess:
    """The node agent, its data in `folder` and its log there or in `log_dir`, with `env`
    (else this process's), once its nodes are registered; given up when `stop` is set.
    `simulated_images` are simulated as KUBESIM_* variables would have them (runtime.py)."""
    argv = [sys.executable, "-m", "infra.local.nodeagent", f"--kubelet-port={free_port()}"]
    argv += [f"--data-dir={folder / 'data'}", f"--speed={speed}"]
    argv += [f"--stager-image={stager_image}"]
    argv += [f"--simulated-image={image}" for image in simulated_images]
    serving = plane.authority.issue("kubelet-serving", "local-node-agent", server=True)
    argv += [f"--serving-cert={serving.cert}", f"--serving-key={serving.key}"]
    argv += [f"--client-ca={plane.authority.pair.cert}"]
    for spec in NODES:
        identity = f"system:node:{spec.name}"
        config = plane.kubeconfig_for(f"node-{spec.name}", identity, ("system:nodes",))
        argv.append(f"--kubeconfig={spec.name}={config}")
    agent = spawn("nodeagent", argv, log_dir=log_dir or folder, env=env, cwd=REPO_ROOT)
    try:
        wait_until_ready(agent, lambda: _registered(agent), READY_SECONDS, stop=stop)
    except BaseException:
        agent.stop()
        raise
    return agent


def _registered(agent: ServerProcess) -> bool:
    return "nodes registered" in agent.log_tail()
