import sys

from tfperf.reports.__main__ import main

sys.exit(main(prog="python -m reports"))
