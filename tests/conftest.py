"""Test setup: TensorFlow quiet, the CPU split before any op (for MirroredStrategy), a private data cache."""

import os
import shutil
import uuid
from pathlib import Path

import pytest

from tfperf.runtime.quiet import tensorflow_started

with tensorflow_started():
    import tensorflow  # noqa: F401 - started here, its start-up notices filtered

FIXTURES = Path(__file__).parent / "fixtures"
# Every process a test's run starts inherits this tag: leftover checks look for this session's processes only.
SESSION_TAG = "TFPERF_TEST_SESSION"
os.environ.setdefault(SESSION_TAG, uuid.uuid4().hex)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _tf_devices():
    from tfperf.runtime import devices

    with tensorflow_started():
        devices.configure()


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    os.environ["TFPERF_CACHE"] = str(tmp_path_factory.mktemp("tfperf-cache"))


@pytest.fixture
def smoke():
    from tfperf import SIZES

    return SIZES["smoke"]


@pytest.fixture
def fixture_run(tmp_path) -> Path:
    """A copy of the checked-in smoke run (xprof writes cache files beside the traces it reads)."""
    dst = tmp_path / "run-smoke"
    shutil.copytree(FIXTURES / "run-smoke", dst)
    return dst
