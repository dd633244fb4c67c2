"""Create and kill: the two user actions that change the cluster.

A create is checked and drafted (start/draft.py), then started the way its input comes
(start/direct.py, start/upload.py; submissions start from their own event); with
CREATE_WAIT_SECONDS, the answer waits that long for the user's container to start. Kill
records `killed` first, so that a sync running at the same time cannot mistake the deleted
Job for a failure, then deletes the job's cluster objects.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import InvalidParameters, TransitionRefusedError
from shared.jobs import queries
from shared.jobs.cleanup import remove_from_cluster, remove_unstarted
from shared.jobs.reconciler import watch_start
from shared.jobs.start import direct, draft, placement, upload
from shared.jobs.start.records import Created
from shared.logs import log_context
from shared.model.access import Caller, Role
from shared.model.job import KILLABLE, Job, Status

log = logging.getLogger(__name__)


def create(body: Any, backends: Backends, caller: Caller) -> Created:
    """Validate, store, deploy; the job and the envelope's message.

    A job with `input_upload` is stored and answered at once with its upload URL; its
    input's finalize event deploys it. A job with `start_after` is deployed as a suspended
    Job, so the cluster has checked it, and stays `created` until the sync resumes it.

    A `request_id` seen in the last 24 h answers the job it made, as it is now, and makes
    nothing; with a different body it is a 409. The key is written in the job's own batch,
    so of concurrent creates with one request id exactly one makes a job.
    """
    drafted = draft.prepare(body, backends, caller)
    if isinstance(drafted, Created):
        created = drafted
    elif drafted.awaits_upload:
        created = upload.create(drafted, backends)
    else:
        created = direct.create(drafted, backends)
    if created.repeat:
        return created._replace(job=queries.fresh(created.job, backends))
    if backends.settings.create_wait > 0 and created.job.status is Status.RUNNING:
        with log_context(job_id=created.job.id, job_name=created.job.name):
            return Created(*watch_start(created.job, backends))
    return created


def preview(body: Any, backends: Backends, caller: Caller) -> tuple[dict[str, Any], str]:
    """`?dry_run=true`: whether the job would be accepted (every check of a create, the
    caller's role and whether it could ever run included; a refusal is the same error),
    and where it would wait. Nothing is stored or made."""
    drafted = draft.prepare(body, backends, caller, dry_run=True)
    assert isinstance(drafted, draft.Draft)  # a dry run answers no request id
    answer = placement.preview(drafted.job, drafted.queue, backends)
    ahead = answer["waiting_ahead"]
    msg = f"The job would be accepted, into queue {drafted.queue}, behind {ahead} waiting"
    return answer, msg


def kill(job_id: str, backends: Backends, caller: Caller) -> tuple[Job, str]:
    """Record the job killed, then take it off the cluster; the job and the message. The
    caller must see the job (else 404) and be a submitter of its account (else 403)."""
    job = queries.visible(job_id, backends, caller)
    caller.require(job.account_id, Role.SUBMITTER)
    refusal = f"Can't stop batch job {job.id}. Status is: {{}}."
    if not job.killable:
        raise InvalidParameters(msg=refusal.format(job.status.value))
    with log_context(job_id=job.id, job_name=job.name):
        try:
            killed = backends.store.transition(
                job.id,
                Status.KILLED,
                reason="killed by its user",
                expect=KILLABLE,
                updates={
                    "reason": "Killed",
                    "message": f"Killed by {caller.email or 'its user'}",
                    "killed_by": caller.email,
                },
            )
        except TransitionRefusedError as refused:
            raise InvalidParameters(msg=refusal.format(refused.current)) from None
        log.info("job killed")
        if killed.transitions[-1]["from"] == Status.CREATED.value:
            pending = remove_unstarted(killed, backends)
        else:
            pending = remove_from_cluster(killed, backends)
    msg = f"Instance {job.id} was successfully deleted from the cluster."
    if pending:
        msg = f"Instance {job.id} was killed; the next synchronization removes it from the cluster."
    return killed, msg
