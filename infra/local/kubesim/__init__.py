"""kubesim: a Kubernetes API server, Job controller and kubelet in one small Python process.

The tests and `make run` have no cluster, so the product's Kubernetes adapter talks to
this simulator through a kubeconfig, exactly as it would to a real cluster. Containers are
simulated from their environment (KUBESIM_*), or run for real: the project's stager image
as a host process, and the images the local cloud stands in for (python, alpine, busybox,
debian, ubuntu, bash) in a bubblewrap sandbox (runtime.py).

Run: python -m infra.local.kubesim --port PORT --kubeconfig PATH --data-dir DIR
         [--speed F] [--stager-image IMAGE] [--token T] [--log-level DEBUG]

Where it knowingly differs from a real cluster:
- JSON only: protobuf request bodies get 415, so `kubectl create/apply` do not work
  (`kubectl get`, `delete`, `logs` do); lists are never Tables, so kubectl prints only
  NAME and AGE. No OpenAPI documents, no aggregated discovery, no server-side apply.
- Requests without a token are served (kubectl sends none over http); a wrong token is 401.
- Strategic merge patch merges lists of objects by `name` (or `type`, `uid`) and knows
  `$patch: delete` only. Subresources: pods/log, pods/eviction (create); `/status` is read
  and replace/patch only.
- Pages of a paginated list reflect the store as it is when each page is read (no
  snapshot), and an old continue token never expires.
- One node, no Node objects: `kubectl drain` and `cordon` do not work, only the Eviction API
  that drain calls. No PodDisruptionBudgets, so every eviction is allowed (a real server
  answers 429 when a budget forbids one).
- Jobs: NonIndexed and Indexed completion modes (backoffLimitPerIndex, maxFailedIndexes,
  FailIndex, elastic completions), but no successPolicy or managedBy (accepted, not acted
  on); restartPolicy OnFailure behaves like Never (a failed pod is replaced, not restarted
  in place); back-offs, the per-index ones included, count from when the controller sees a
  failure, not from the container's finishedAt. Pods carry the job-tracking finalizer and
  are counted once each, as on a cluster. An Indexed Job's pod gets spec.hostname
  `<job>-<index>`, but no container sees it as its host name (sandboxes share the host's).
- Local storage eviction measures usage afresh every evictionMonitoringPeriod (10 simulated
  seconds), not from the kubelet's cached volume statistics (refreshed every minute); a
  pod's ephemeral storage is its emptyDirs, logs and one working directory shared by its
  containers (no per-container writable layer, so no per-container ephemeral-storage
  eviction), and there is no node-pressure eviction. A kill gets no 2 s minimum grace
  period (the kubelet's minimumGracePeriodInSeconds).
- Claims bind at once: no storage classes, provisioners or WaitForFirstConsumer; a claim
  is a host directory whatever its size.
- Pod logs: no timestamps, sinceSeconds or sinceTime; containers never restart, so
  `previous=true` always answers 400. Termination messages have no pod-wide 12 KiB cap, and
  outside a sandbox terminationMessagePath is rewritten only where it appears in a
  KUBESIM_SH script or in a stager container's arguments and environment.
- Deleting a namespace kills its pods at once (grace period 0).
- Images are never pulled. Containers of python, alpine, busybox, debian, ubuntu and bash
  images (any registry or tag) run their command and args, with Kubernetes' meaning
  (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes),
  or KUBESIM_SH, in a bubblewrap sandbox whose file system is the host's /usr and /etc,
  read-only: whatever that host has installed, not the image's. Their network is the
  host's, there is no securityContext (they run as root), their PID 1 is bwrap (as with
  `docker run --init`), writes outside volumes go to a tmpfs that counts as memory, not
  ephemeral storage, and a memory limit is a cgroup of kubesim's own (or prlimit --as
  where it cannot make one). Containers of other images run nothing but KUBESIM_SH, on the
  host with mount paths rewritten.
"""
