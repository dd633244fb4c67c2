"""Entry point of the stager image and of `python -m shared.stager`."""

import sys

from shared.stager.cli import main

sys.exit(main())
