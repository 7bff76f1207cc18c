"""``python -m cnnkeras.training``: the ``cnnkeras`` command (all subcommands)."""

import sys

from cnnkeras.main import main

sys.exit(main())
