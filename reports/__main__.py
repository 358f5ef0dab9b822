import sys

from tfperf.cli import main

sys.exit(main(["report", *sys.argv[1:]], prog="python -m reports"))
