"""Stand-ins for gcloud and kubectl when running a deploy plan here, where Google Cloud is out
of reach. They keep what a deploy creates in a JSON state file and answer as the real tools
do where the plan depends on it: describe fails for what does not exist, a second create
fails with ALREADY_EXISTS, bindings and `kubectl apply` are idempotent.

Usage: python fake_cli.py gcloud|kubectl ARGS...  (state file in FAKE_CLOUD_STATE)
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

ENDPOINT = "34.1.2.3"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
SYNC_URL = "https://synchronize-batch-jobs-abc123-ew.a.run.app"
FIRESTORE_LOCATION = "eur3"


WRITER_IDENTITY = "serviceAccount:service-123@gcp-sa-logging.iam.gserviceaccount.com"


def _value(args: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"{flag}="))


def gcloud(args: list[str], state: dict[str, Any]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if words[:3] == ["iam", "service-accounts", "describe"]:
        return 0 if words[3] in state["accounts"] else _fail("NOT_FOUND: no such account")
    if words[:3] == ["iam", "service-accounts", "create"]:
        email = f"{words[3]}@{_value(args, '--project')}.iam.gserviceaccount.com"
        if email in state["accounts"]:
            return _fail("ALREADY_EXISTS: account exists")
        state["accounts"].append(email)
        return 0
    if words[:4] == ["firestore", "indexes", "composite", "create"]:
        index = " ".join(sorted(a for a in args if a.startswith("--field-config")))
        if index in state["indexes"]:
            return _fail("ERROR: (gcloud.firestore.indexes.composite.create) ALREADY_EXISTS")
        state["indexes"].append(index)
        return 0
    if words[:3] == ["firestore", "databases", "describe"]:
        print(FIRESTORE_LOCATION)
        return 0
    if words[:4] == ["firestore", "fields", "ttls", "update"]:
        ttl = (words[4], _value(args, "--collection-group"), "--enable-ttl" in args)
        state.setdefault("ttls", {})[f"{ttl[1]}/{ttl[0]}"] = ttl[2]  # an update: idempotent
        return 0
    if "add-iam-policy-binding" in words or "add-invoker-policy-binding" in words:
        binding = " ".join(args)
        if binding not in state["bindings"]:
            state["bindings"].append(binding)
        return 0
    if words[:3] == ["storage", "buckets", "get-iam-policy"]:
        print(json.dumps(state.get("bucket_policy", {"bindings": [], "etag": "e0", "version": 1})))
        return 0
    if words[:3] == ["storage", "buckets", "set-iam-policy"]:
        policy = json.loads(Path(words[4]).read_text())
        state["bucket_policy"] = {**policy, "etag": f"e{len(state['calls'])}"}
        return 0
    if words[:3] == ["container", "clusters", "describe"]:
        field = _value(args, "--format")
        print({"value(endpoint)": state.get("endpoint", ENDPOINT),
               "value(masterAuth.clusterCaCertificate)": CA.decode()}[field])  # fmt: skip
        return 0
    if words[:3] == ["container", "clusters", "get-credentials"]:
        Path(os.environ["KUBECONFIG"]).write_text("apiVersion: v1\nkind: Config\n")
        return 0
    if words[:2] == ["storage", "service-agent"]:
        print("service-123@gs-project-accounts.iam.gserviceaccount.com")
        return 0
    if words[:2] == ["functions", "deploy"]:
        env_file = Path(_value(args, "--env-vars-file")).read_text()
        state["functions"][words[2]] = {"args": args, "env": env_file}
        return 0
    if words[:2] == ["functions", "describe"]:
        if words[2] not in state["functions"]:
            return _fail("NOT_FOUND")
        print(SYNC_URL)
        return 0
    if words[:2] == ["services", "enable"]:
        return 0
    if words[:4] == ["secrets", "versions", "describe", "latest"]:
        # The operator made it before the deploy (the README's one line).
        secret = _value(args, "--secret")
        print(f"projects/123/secrets/{secret}/versions/1")
        return 0
    if words[:3] == ["pubsub", "topics", "describe"]:
        return 0 if words[3] in state.setdefault("topics", []) else _fail("NOT_FOUND: topic")
    if words[:3] == ["pubsub", "topics", "create"]:
        if words[3] in state.setdefault("topics", []):
            return _fail("ALREADY_EXISTS: topic exists")
        state["topics"].append(words[3])
        return 0
    if words[:2] == ["logging", "sinks"]:
        return _sinks(words[2:], args, state.setdefault("sinks", {}))
    return _fail(f"fake gcloud does not know: {' '.join(args)}")


def _sinks(words: list[str], args: list[str], sinks: dict[str, Any]) -> int:
    """Log sinks: describe (its writer identity), create, and update (which needs one)."""
    verb, name = words[0], words[1]
    if verb == "describe":
        if name not in sinks:
            return _fail("NOT_FOUND: sink")
        print(WRITER_IDENTITY)
        return 0
    if (verb == "create") == (name in sinks):
        return _fail("ALREADY_EXISTS: sink" if verb == "create" else "NOT_FOUND: sink")
    sinks[name] = {"destination": words[2], "filter": _value(args, "--log-filter")}
    return 0


def kubectl(args: list[str], state: dict[str, Any]) -> int:
    if "apply" in args:
        path = Path(args[args.index("-f") + 1])
        state.setdefault("applied", {})[path.name] = path.read_text()
        return 0
    if "rollout" in args:
        return 0  # the Deployment is ready
    return _fail(f"fake kubectl does not know: {' '.join(args)}")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    path = Path(os.environ["FAKE_CLOUD_STATE"])
    state = json.loads(path.read_text())
    state["calls"].append([tool, *args])
    code = {"gcloud": gcloud, "kubectl": kubectl}[tool](args, state)
    path.write_text(json.dumps(state))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
