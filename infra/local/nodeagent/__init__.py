"""The local cloud's node agent: what stands in for the kubelet beside the real control plane
(infra/local/controlplane/). It registers the local cloud's nodes and keeps them alive
(nodes.py); running the pods bound to them moves here from kubesim next."""
