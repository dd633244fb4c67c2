"""What must hold after any fault or race, once the sync has run: checked against the real
Firestore records, the cluster and the bucket."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from shared.cloud.backends import Backends
from shared.model.job import FINAL, TRANSITIONS, Job, Status
from shared.model.manifests import JOB_ID, OWNED_SELECTOR
from tests.fixtures.waiting import DEADLINE


def all_jobs(backends: Backends) -> list[Job]:
    jobs = (backends.store.get(ref.id) for ref in backends.store.jobs.list_documents())
    return [job for job in jobs if job is not None]


def assert_path_allowed(job: Job) -> None:
    """The recorded transitions form one path through the table, ending in one final status."""
    steps = [(Status(t["from"]), Status(t["to"])) for t in job.transitions]
    assert steps, f"{job.id} has no transitions"
    assert steps[0][0] is Status.CREATED, steps
    for before, after in steps:
        assert after in TRANSITIONS[before], steps
    for (_, after), (before, _) in zip(steps, steps[1:], strict=False):
        assert after is before, steps
    finals = [after for _, after in steps if after in FINAL]
    assert len(finals) <= 1, steps
    if job.status in FINAL:
        assert finals == [job.status], steps


def owned_objects(batch_v1: Any, core_v1: Any, namespace: str) -> list[tuple[str, str, str]]:
    """(kind, name, job id) of every Job, pod and volume claim labelled as the product's."""
    jobs = batch_v1.list_namespaced_job(namespace, label_selector=OWNED_SELECTOR).items
    pods = core_v1.list_namespaced_pod(namespace, label_selector=OWNED_SELECTOR).items
    claims = core_v1.list_namespaced_persistent_volume_claim(
        namespace, label_selector=OWNED_SELECTOR
    ).items
    return [
        (kind, obj.metadata.name, (obj.metadata.labels or {}).get(JOB_ID, ""))
        for kind, objects in (("Job", jobs), ("Pod", pods), ("PersistentVolumeClaim", claims))
        for obj in objects
    ]


def assert_settled(
    backends: Backends,
    batch_v1: Any,
    core_v1: Any,
    namespace: str,
    storage_client: Any,
    bucket: str,
    *,
    timeout: float = DEADLINE,
) -> list[Job]:
    """Every job final with a path the table allows, failures with their reason, no object
    of ours without a live job, the input and output of every success kept, and the log of
    every job that reached the cluster saved."""
    jobs = all_jobs(backends)
    for job in jobs:
        assert job.status in FINAL, f"{job.name} stuck in {job.status.value}"
        assert_path_allowed(job)
        if job.status is Status.FAILED:
            assert job.reason and job.message, f"{job.name} failed without a reason"
    names = {blob.name for blob in storage_client.list_blobs(bucket)}
    for job in jobs:
        if job.status is Status.SUCCEEDED:
            outputs = job.output_objects
            if job.task_output_urls is not None:  # an array job's, but its failed tasks'
                outputs = [o for o, url in zip(outputs, job.task_output_urls, strict=True) if url]
            assert set(outputs) <= names, f"{job.name}: output lost"
            if job.has_input:
                assert job.input_object in names, f"{job.name}: input lost"
        deployed = any(t["to"] == Status.RUNNING.value for t in job.transitions)
        if job.status in FINAL and deployed and job.task_count is None:
            assert job.log_object in names, f"{job.name}: log lost"
    live = {job.id for job in jobs if job.status not in FINAL}
    deadline = time.monotonic() + timeout  # deletions finish in the background
    while True:
        leftovers = [o for o in owned_objects(batch_v1, core_v1, namespace) if o[2] not in live]
        if not leftovers:
            return jobs
        assert time.monotonic() < deadline, f"objects without a live job: {leftovers}"
        time.sleep(0.1)


def assert_only_jobs(
    backends: Backends,
    batch_v1: Any,
    core_v1: Any,
    namespace: str,
    storage_client: Any,
    bucket: str,
    job_ids: Collection[str] = (),
) -> None:
    """Nothing exists but what the accepted creates `job_ids` made: a refused request
    leaves no record, no reserved name, no cluster object and no object in the bucket."""
    jobs = all_jobs(backends)
    assert {job.id for job in jobs} == set(job_ids), [(j.id, j.name, j.status) for j in jobs]
    names = {s.id: s.get("job_id") for s in backends.store.names.stream()}
    assert names == {job.name: job.id for job in jobs}, names
    cluster = {  # everything in the namespace, labelled as ours or not
        "Job": batch_v1.list_namespaced_job(namespace).items,
        "PersistentVolumeClaim": core_v1.list_namespaced_persistent_volume_claim(namespace).items,
        "Pod": core_v1.list_namespaced_pod(namespace).items,
    }
    strays = [
        (kind, obj.metadata.name)
        for kind, objects in cluster.items()
        for obj in objects
        if (obj.metadata.labels or {}).get(JOB_ID) not in job_ids
    ]
    assert not strays, strays
    # A `created` job that waits has not run. Waiting for its upload, it has nothing on the
    # cluster (its input's finalize event creates its Job) and, with nobody uploading, no
    # input object; scheduled (start_after ahead), it has its Job, suspended, and no pod.
    for job in jobs:
        if not job.waiting:
            continue
        owned = {
            kind: [o for o in objects if (o.metadata.labels or {}).get(JOB_ID) == job.id]
            for kind, objects in cluster.items()
        }
        if job.awaiting_upload:
            assert not any(owned.values()), (job.name, owned)
        else:
            assert [o.spec.suspend for o in owned["Job"]] == [True], (job.name, owned["Job"])
            assert not owned["Pod"], (job.name, [o.metadata.name for o in owned["Pod"]])
    # An accepted job's pod runs at once: its output (and once it ends, its log) may land;
    # a waiting job's pod has not run, and an upload's input is not there before it is put.
    started = [job for job in jobs if not job.waiting]
    made = {job.log_object for job in started}
    for job in started:  # an array job's tasks each land an output and a log
        made |= set(job.output_objects)
        made |= {job.task_log_object(index) for index in range(job.task_count or 0)}
    made |= {job.input_object for job in jobs if job.has_input and not job.awaiting_upload}
    made |= {job.tasks_object for job in jobs if job.task_environments}
    blobs = {blob.name for blob in storage_client.list_blobs(bucket)}
    assert blobs <= made, blobs - made
