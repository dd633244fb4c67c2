"""A CloudEvent function for the relay tests: appends every event it accepts to SINK_FILE."""

import json
import os

import functions_framework
from cloudevents.http import CloudEvent


@functions_framework.cloud_event
def record(event: CloudEvent) -> None:
    attributes = {key: value for key, value in event.get_attributes().items()}
    with open(os.environ["SINK_FILE"], "a") as sink:
        sink.write(json.dumps({"attributes": attributes, "data": event.get_data()}) + "\n")
