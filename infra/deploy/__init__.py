"""`make deploy`: the whole product on Google Cloud with gcloud, kubectl and the Cloud
Scheduler client, as one ordered plan that `DRY_RUN=1` prints instead of running.

config (settings) -> steps (what a plan is made of) -> plan (the plan itself, built from
functions, iam, cluster and indexes) -> runner (print or run it); bundle builds the
functions' source and scheduler creates or updates the scheduler job.
"""
