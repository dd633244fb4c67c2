"""Every gcloud command of the plan exists, with every flag it is given, in the installed
gcloud's own help (read offline): a renamed flag fails here, not halfway through a deploy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from infra.deploy.config import DeployConfig
from infra.deploy.functions import FUNCTIONS
from infra.deploy.iam import APIS, accounts
from infra.deploy.indexes import TTL_FIELD
from infra.deploy.plan import build_plan
from infra.deploy.steps import Lookup, Run
from tests.deploy.test_plan import BUILD, EXAMPLE

pytestmark = pytest.mark.skipif(shutil.which("gcloud") is None, reason="needs gcloud")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CONFIG = DeployConfig.load({}, EXAMPLE)
# The plan's own names, which are positional arguments, not part of a command's path
NAMES = (
    {f.name for f in FUNCTIONS}
    | {a.id for a in accounts(CONFIG)}
    | set(APIS)
    | {
        CONFIG.project,
        CONFIG.cluster,
        CONFIG.events_topic,
        CONFIG.cluster_events_topic,
        CONFIG.cluster_events_sink,
        f"pubsub.googleapis.com/projects/{CONFIG.project}/topics/{CONFIG.cluster_events_topic}",
        CONFIG.callback_secret,
        "latest",  # a secret's version
        TTL_FIELD,
    }
)


def gcloud_calls() -> dict[tuple[str, ...], set[str]]:
    """Each gcloud command of the plan (its words before the flags, names removed), with
    every flag it is given anywhere in the plan."""
    used: dict[tuple[str, ...], set[str]] = {}
    for step in build_plan(CONFIG, BUILD):
        for action in step.actions:
            argvs = []
            if isinstance(action, Run):
                argvs = [action.argv, action.unless] if action.unless else [action.argv]
            elif isinstance(action, Lookup):
                argvs = [action.argv]
            for argv in argvs:
                if "gcloud" not in argv:
                    continue
                words = argv[argv.index("gcloud") + 1 :]
                path = tuple(
                    word
                    for word in words
                    if not word.startswith("-") and word not in NAMES and "@" not in word
                    and not word.startswith("gs://")
                )  # fmt: skip
                flags = {word.split("=")[0] for word in words if word.startswith("--")}
                used.setdefault(path, set()).update(flags)
    return used


CALLS = gcloud_calls()


@pytest.mark.parametrize("path", sorted(CALLS), ids=" ".join)
def test_the_command_and_its_flags_exist(path):
    done = subprocess.run(
        ["gcloud", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "PAGER": "cat"},
    )
    assert done.returncode == 0, f"gcloud {' '.join(path)}: {done.stderr[-500:]}"
    text = ANSI.sub("", done.stdout)
    assert f"gcloud {' '.join(path)} - " in re.sub(r"\s+", " ", text)  # the NAME section
    for flag in sorted(CALLS[path]):
        negated = flag.startswith("--no-") and f"--[no-]{flag[5:]}" in text
        assert negated or re.search(rf"{re.escape(flag)}\b", text), (
            f"gcloud {' '.join(path)} has no {flag}"
        )
