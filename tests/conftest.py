"""Shared test settings and fixtures."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("DMLC_NODE_HOST", "127.0.0.1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.RandomState(0)
