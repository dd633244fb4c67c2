"""The deployed entry points. Each hands its request to the `shared` package."""

import functions_framework
from cloudevents.http import CloudEvent
from flask import Request, Response, current_app, has_app_context
from werkzeug.exceptions import HTTPException

from shared.http import routes

# Requests that functions-framework answers before any function runs (a path its routes do
# not match, such as one holding a newline; /robots.txt) get the envelope too, not HTML.
# functions-framework runs this file inside the app it is building: register on that app
# (its module-level `errorhandler` is one global, shared by apps built at the same time).
if has_app_context():
    current_app.register_error_handler(HTTPException, routes.framework_error)


@functions_framework.http
def batch_api(request: Request) -> Response:
    """The earlier REST API: /batch/ routes."""
    return routes.batch_api(request)


@functions_framework.http
def create_job(request: Request) -> Response:
    return routes.create_job(request)


@functions_framework.http
def get_job(request: Request) -> Response:
    return routes.get_job(request)


@functions_framework.http
def list_jobs(request: Request) -> Response:
    return routes.list_jobs(request)


@functions_framework.http
def kill_job(request: Request) -> Response:
    return routes.kill_job(request)


@functions_framework.http
def synchronize_batch_jobs(request: Request) -> Response:
    """Called by Cloud Scheduler."""
    return routes.synchronize_batch_jobs(request)


@functions_framework.cloud_event
def on_output_finalized(event: CloudEvent) -> None:
    """Eventarc: google.cloud.storage.object.v1.finalized on the jobs bucket."""
    from shared.http.api import handle_finalized

    handle_finalized(event.get_data() or {})


@functions_framework.cloud_event
def deliver_callbacks(event: CloudEvent) -> None:
    """Eventarc: google.cloud.pubsub.topic.v1.messagePublished on JOB_EVENTS_TOPIC."""
    from shared.http.api import handle_job_event

    handle_job_event(event.get_data() or {})


@functions_framework.cloud_event
def publish_job_events(event: CloudEvent) -> None:
    """Eventarc: google.cloud.firestore.document.v1.written on the jobs collection."""
    from shared.http.api import handle_job_written

    handle_job_written(event.get_data() or b"")
