"""The local cloud's node agent: what stands in for the kubelet beside the real control plane
(infra/local/controlplane/), and the only part of the local cluster written here.

- nodes.py registers the local cloud's nodes (an ordinary one and a GKE Spot one) and keeps
  them alive (their Lease and Ready condition);
- pods.py runs the pods the scheduler binds to them, with runtime.py (the bubblewrap
  sandbox of sandbox.py and commands.py for the images it stands in for, KUBESIM_*
  simulation otherwise, memory limits by memcg.py), and writes their status as the kubelet
  does (podstatus.py);
- logs.py serves their logs on the kubelet's port (podlogs.py), for `pods/log`.
"""
