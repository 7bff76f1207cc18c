"""``python -m cnnkeras.export``: the ``cnnkeras`` command (all subcommands)."""

import sys

from cnnkeras.main import main

sys.exit(main())
