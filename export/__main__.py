"""``python -m export``: the full ``cnnkeras`` command."""

import sys

from export.cli import main

sys.exit(main())
