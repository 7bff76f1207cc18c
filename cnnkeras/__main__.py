"""``python -m cnnkeras summary ...``: the cnnkeras package's own subcommands."""

import sys

from cnnkeras.cli import main

sys.exit(main())
