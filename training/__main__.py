"""``python -m training``: the summary, train and augment-preview subcommands."""

import sys

from training.cli import main

sys.exit(main())
