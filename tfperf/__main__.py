"""`python -m tfperf ...`: the same as the `tfperf` command."""

import sys

from tfperf.cli import main

sys.exit(main())
