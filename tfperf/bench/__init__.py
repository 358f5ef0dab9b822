"""Timing: the pytest plugin (options, the run folder), the harness, and the worker processes."""
