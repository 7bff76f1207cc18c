"""``python -m export``: the ``cnnkeras`` command (all subcommands; export's are export, predict, check)."""

import sys

from cnnkeras.main import main

sys.exit(main())
