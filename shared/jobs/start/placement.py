"""Where a job waits: its account's Kueue queue (made sure to exist), and whether it could
ever be admitted there. A job whose requests exceed what its account could ever be given
(its nominal quota and all its cohort could lend, or the largest node) is refused at
create, with the numbers, instead of waiting forever; `?dry_run=true` answers the same
question without making anything (`preview`)."""

from __future__ import annotations

from typing import Any

from shared.cloud.backends import Backends
from shared.errors import InvalidParameters
from shared.model import manifests, queues
from shared.model.access import ACCOUNT_ID
from shared.model.job import Job


def queue_of(job: Job, backends: Backends) -> str:
    """The LocalQueue of the job's account (of no account: `default`), made sure to exist
    (shared/cloud/queues.py), and the held one of scheduled jobs with it."""
    return backends.queues.ensure(job.account_id, lambda: share_of(job.account_id, backends))


def share_of(account_id: str | None, backends: Backends) -> queues.Share:
    """The account's share as its record says; a job of no account (or, with access
    control off, of an account with no record) gets the default quota's queue."""
    default = backends.settings.default_quota
    known = account_id is not None and ACCOUNT_ID.fullmatch(account_id)
    account = backends.accounts.get(account_id) if account_id and known else None
    return account.share(default) if account is not None else queues.Share(quota=default)


def check(job: Job, backends: Backends) -> str:
    """The job's queue; InvalidParameters, naming the numbers, if it could never run."""
    queue = queue_of(job, backends)
    # What it asks for: its URLs, made only once it is accepted, count for nothing here.
    manifest = manifests.batch_job(
        job,
        backends.settings,
        upload_url="",
        input_url="unsigned" if job.has_input else None,
        tasks_url="unsigned" if job.task_environments else None,
        queue=queue,
    )
    wanted = queues.demand(manifest)
    why = queues.never_fits(wanted, backends.queues.ceiling(queue), backends.queues.largest_nodes())
    if why is not None:  # never on what was kept: read again, and look once more
        backends.queues.forget()
        why = queues.never_fits(
            wanted, backends.queues.ceiling(queue), backends.queues.largest_nodes()
        )
    if why is not None:
        raise InvalidParameters(msg=why, data={"resources": f"{why} (queue {queue})"})
    return queue


def preview(job: Job, queue: str, backends: Backends) -> dict[str, Any]:
    """A dry run's answer: the job would be accepted, and where it would wait."""
    ahead = len(backends.queues.positions(queue))
    return {
        "accepted": True,
        "account_id": job.account_id,
        "queue": queue,
        "waiting_ahead": ahead,
        "scheduled_for": job.scheduled_for,
    }
