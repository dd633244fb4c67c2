"""kubesim: a Kubernetes API server, Job controller and kubelet in one small Python process.

The tests and `make run` have no cluster, so the product's Kubernetes adapter talks to
this simulator through a kubeconfig, exactly as it would to a real cluster. Containers are
simulated from their environment (KUBESIM_*), or run for real on the host when they are
the project's stager image or carry a KUBESIM_SH command.

Run: python -m infra.local.kubesim --port PORT --kubeconfig PATH --data-dir DIR
         [--speed F] [--stager-image IMAGE] [--token T] [--log-level DEBUG]

Where it knowingly differs from a real cluster:
- JSON only: protobuf request bodies get 415, so `kubectl create/apply` do not work
  (`kubectl get`, `delete`, `logs` do); lists are never Tables, so kubectl prints only
  NAME and AGE. No OpenAPI documents, no aggregated discovery, no server-side apply.
- Requests without a token are served (kubectl sends none over http); a wrong token is 401.
- Strategic merge patch merges lists of objects by `name` (or `type`, `uid`) and knows
  `$patch: delete` only. Subresources: pods/log; `/status` is read and replace/patch only.
- Pages of a paginated list reflect the store as it is when each page is read (no
  snapshot), and an old continue token never expires.
- Job pods carry no `batch.kubernetes.io/job-tracking` finalizer: the controller counts a
  pod that vanished before it saw it finish as failed. Only NonIndexed completion mode;
  restartPolicy OnFailure behaves like Never (a failed pod is replaced, not restarted in
  place); podFailurePolicy supports onExitCodes and onPodConditions.
- Deleting a namespace kills its pods at once (grace period 0).
- Containers of other images never run anything but KUBESIM_SH; images are never pulled.
"""
