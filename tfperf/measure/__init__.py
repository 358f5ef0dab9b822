"""Measuring: the pytest plugin, the harness and its worker processes, blocks of interleaved rounds, the machine's
state while they ran."""
