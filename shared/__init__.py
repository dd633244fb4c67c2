"""The Kubernetes task runner: job life cycle, storage, cluster access and the stager."""
