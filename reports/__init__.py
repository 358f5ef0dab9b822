"""`python -m reports ...` from the repository root: the same as `tfperf report ...` (the code is tfperf.cli)."""
