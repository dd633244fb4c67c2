"""The deployed entry points. Each hands its request, or its event's data, to the `shared`
package with the process's backends: the clients of Firestore, Cloud Storage, the cluster
and Pub/Sub, each built on its first use (shared/cloud/backends.py)."""

import functions_framework
from cloudevents.http import CloudEvent
from flask import Request, Response, current_app, has_app_context
from werkzeug.exceptions import HTTPException

from shared import triggers
from shared.cloud.backends import default_backends
from shared.http import routes


# Requests that functions-framework answers before any function runs (a path its routes do
# not match, such as one holding a newline; /robots.txt) get the envelope too, not HTML.
# functions-framework runs this file inside the app it is building: register on that app
# (its module-level `errorhandler` is one global, shared by apps built at the same time).
def framework_error(error: HTTPException) -> Response:
    return routes.framework_error(error, default_backends())


if has_app_context():
    current_app.register_error_handler(HTTPException, framework_error)


@functions_framework.http
def batch_api(request: Request) -> Response:
    """The earlier REST API: /batch/ routes."""
    return routes.batch_api(request, default_backends())


@functions_framework.http
def create_job(request: Request) -> Response:
    return routes.create_job(request, default_backends())


@functions_framework.http
def get_job(request: Request) -> Response:
    return routes.get_job(request, default_backends())


@functions_framework.http
def list_jobs(request: Request) -> Response:
    return routes.list_jobs(request, default_backends())


@functions_framework.http
def kill_job(request: Request) -> Response:
    return routes.kill_job(request, default_backends())


@functions_framework.http
def synchronize_batch_jobs(request: Request) -> Response:
    """Called by Cloud Scheduler."""
    return routes.synchronize_batch_jobs(request, default_backends())


@functions_framework.cloud_event
def on_output_finalized(event: CloudEvent) -> None:
    """Eventarc: google.cloud.storage.object.v1.finalized on the jobs bucket."""
    triggers.object_finalized(event.get_data() or {}, default_backends())


@functions_framework.cloud_event
def on_cluster_event(event: CloudEvent) -> None:
    """Eventarc: google.cloud.pubsub.topic.v1.messagePublished on CLUSTER_EVENTS_TOPIC, where
    a log sink routes the Kubernetes events that end a job."""
    triggers.cluster_event(event.get_data() or {}, default_backends())


@functions_framework.cloud_event
def deliver_callbacks(event: CloudEvent) -> None:
    """Eventarc: google.cloud.pubsub.topic.v1.messagePublished on JOB_EVENTS_TOPIC."""
    triggers.job_event(event.get_data() or {}, default_backends())


@functions_framework.cloud_event
def publish_job_events(event: CloudEvent) -> None:
    """Eventarc: google.cloud.firestore.document.v1.written on the jobs collection."""
    triggers.job_written(event.get_data() or b"", default_backends())
