"""`python -m occamtune.cli` (as torchrun and the search's workers start it)."""

import sys

from occamtune.cli import main

sys.exit(main())
