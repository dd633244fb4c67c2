"""The deploy plan, in the order it runs: reads that can stop the deploy come before any
change, identities before their grants, the functions before who may call them, and the
sync function before the scheduler job that needs its URL."""

from __future__ import annotations

from pathlib import Path

from infra.deploy import cluster, iam, indexes, scheduler
from infra.deploy.config import DeployConfig
from infra.deploy.functions import FUNCTIONS, deploy_command, env_yaml, function_env
from infra.deploy.steps import Lookup, Run, Step, WriteFile


def build_plan(config: DeployConfig, build: Path) -> list[Step]:
    bundle = build / "bundle"
    env_file = build / "functions.env.yaml"
    _, passes = scheduler.cadence(config.sync_interval)
    account = {"api": config.api_account, "sync": config.sync_account}
    account["cluster-events"] = config.sync_account  # what it does is the sync's, for one job
    account["finalize"] = config.finalize_account
    account["callbacks"] = config.callbacks_account
    account["events"] = config.events_account
    sync = next(f.name for f in FUNCTIONS if f.role == "sync")
    finalize = next(f.name for f in FUNCTIONS if f.role == "finalize")
    callbacks = next(f.name for f in FUNCTIONS if f.role == "callbacks")
    events = next(f.name for f in FUNCTIONS if f.role == "events")
    cluster_events = next(f.name for f in FUNCTIONS if f.role == "cluster-events")
    api = [f.name for f in FUNCTIONS if f.role == "api"]
    return [
        iam.enable_apis(config),
        cluster.lookups(config),
        iam.firestore_location(config),
        iam.callback_secret(config),
        iam.service_accounts(config),
        iam.events_topic(config),
        iam.cluster_events(config),
        iam.grants(config),
        *([iam.submission_grants(config)] if config.access_control else []),
        cluster.kueue(config, build),
        cluster.apply(config, build),
        indexes.create_indexes(config),
        indexes.request_ttl(config),
        Step(
            "The functions' source",
            "main.py, the shared package and the runtime requirements in one directory.",
            (Run(("python", "-m", "infra.deploy.bundle", str(bundle))),),
        ),
        Step(
            "Functions",
            "Each from the same source with its own entry point, identity and size:\n"
            + "\n".join(
                f"{f.name}: {f.memory}, {f.cpu or 'default'} CPU, {f.timeout} s: {f.sizing}"
                for f in FUNCTIONS
            ),
            (
                WriteFile(env_file, env_yaml(function_env(config, passes))),
                *(
                    deploy_command(
                        f,
                        config,
                        source=bundle,
                        env_file=env_file,
                        account=config.email(account[f.role]),
                    )
                    for f in FUNCTIONS
                ),
            ),
        ),
        iam.invokers(config, api, sync, finalize, callbacks, events, cluster_events),
        Step(
            "Scheduler",
            "The scheduler's account calls the sync with an OIDC token for the sync's URL.",
            (
                Lookup(
                    "SYNC_URL",
                    (
                        "gcloud",
                        "functions",
                        "describe",
                        sync,
                        f"--region={config.region}",
                        f"--project={config.project}",
                        "--format=value(serviceConfig.uri)",
                    ),
                ),  # fmt: skip
                scheduler.job_body(config),
            ),
        ),
    ]
