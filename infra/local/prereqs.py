"""`python -m infra.local.prereqs`: one clear line and exit 1 if the local cloud cannot run."""

from __future__ import annotations

import sys

from infra.local.emulators import MissingPrerequisiteError, check_prerequisites, fake_gcs_binary


def main() -> int:
    try:
        check_prerequisites()
        fake_gcs_binary()
    except MissingPrerequisiteError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
