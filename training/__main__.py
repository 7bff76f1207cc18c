"""``python -m training``: the ``cnnkeras`` command (all subcommands; training's are train, augment-preview, analyze)."""

import sys

from cnnkeras.main import main

sys.exit(main())
