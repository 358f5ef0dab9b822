"""tfperf scenarios: what is measured. Plain TensorFlow, variants as data, no pytest."""

from .core import SIZES, SUITE_VERSION, Scenario, Size, Unsupported, Variant

__all__ = ["SIZES", "SUITE_VERSION", "Scenario", "Size", "Unsupported", "Variant"]
