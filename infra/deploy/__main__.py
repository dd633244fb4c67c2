"""make deploy: `python -m infra.deploy [--env-file FILE] [--build DIR]`; DRY_RUN=1 prints."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from infra.deploy.config import DeployConfig, DeploySettingsError
from infra.deploy.plan import build_plan
from infra.deploy.runner import DeployError, Runner

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("gcloud", "kubectl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make deploy", description=__doc__)
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE settings (default: deploy.env)")
    parser.add_argument("--build", type=Path, default=Path("build/deploy"), help="work dir")
    args = parser.parse_args(argv)
    env_file = args.env_file
    if env_file is None and (ROOT / "deploy.env").is_file():
        env_file = ROOT / "deploy.env"
    try:
        config = DeployConfig.load(env_file=env_file)
    except DeploySettingsError as error:
        for problem in error.problems:
            print(f"deploy: {problem}", file=sys.stderr)
        return 2
    steps = build_plan(config, args.build)
    runner = Runner(cwd=ROOT)
    if config.dry_run:
        runner.header(f"deploy plan for {config.project} in {config.region} (DRY_RUN: not run)")
        runner.print_plan(steps)
        return 0
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    for tool in missing:
        print(f"deploy: {tool} is not on PATH", file=sys.stderr)
    if missing:
        return 2
    runner.header(f"deploying to {config.project} in {config.region}")
    try:
        runner.run(steps)
    except DeployError as error:
        print(f"deploy stopped at {error}", file=sys.stderr)
        return 1
    print("\n# deployed", file=runner.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
