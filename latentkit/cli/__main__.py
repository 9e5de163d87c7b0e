"""``python -m latentkit.cli``: the same as ``latentkit``."""

import sys

from latentkit.cli.main import main

sys.exit(main())
