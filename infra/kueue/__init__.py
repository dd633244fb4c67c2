"""Kueue, the cluster's queues: its manager and its manifests, of one pinned release.

- build.py: the manager and controller-gen, built from the Go module proxy (this folder's
  go.mod), and the CRDs, webhook configurations and ClusterRole that controller-gen
  generates from Kueue's Go types and markers, all cached once per machine.
- install.py: the objects that install Kueue on a cluster (the generated ones, with the
  manager's service account, bindings, services and configuration): `make deploy` applies
  them on GKE with the manager as a Deployment of Kueue's image; the local cloud applies
  them with the manager as a process of its own (infra/local/controlplane/kueue.py).
"""
