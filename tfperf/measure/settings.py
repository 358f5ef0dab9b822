"""A run's settings, as the command line gave them (checked by the plugin), shared by the harness and its worker
processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tfperf.api.base import Size
from tfperf.runtime.profiling import TracerLevels


@dataclass
class Settings:
    size: Size
    run_dir: Path
    profile: bool
    profile_steps: int
    levels: TracerLevels
    report: bool
    processes: int = 1
    rounds: int = 0  # timed rounds per process; 0: the size's
    budget_s: float | None = None  # seconds the measuring may take (--tfperf-budget, else the size's); None: any
    seed: int = 0
    plugins: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()  # --tfperf-scenarios, as given (the workers load the same)
    paths: tuple[str, ...] = ()  # import roots the workers need (the pytest rootdir, the working directory)
    # An A/B side measured in an interpreter of its own (--tfperf-ab-base-python / -new-python): side -> path
    pythons: dict[str, str] = field(default_factory=dict)
