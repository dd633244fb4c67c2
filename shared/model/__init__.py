"""The pure model: a job record and its status table (job), the create's validation, the
Kubernetes manifests, and the diagnosis of a finished pod. No I/O: plain functions of
records, settings and dicts."""
