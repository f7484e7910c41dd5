"""The Flink environment for these tests: ``.venv-flink`` (``make flink-env``).

The tests run from the main environment and start the job there, as ``payrecon stream
--runtime flink`` does. A missing environment fails them (``make test`` builds it first);
it is never a reason to skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from payrecon.errors import DependencyError
from payrecon.stream.flink_launch import flink_python

JOB_TIMEOUT_S = 180  # a hung mini-cluster fails the test instead of the whole run


@pytest.fixture(scope="session")
def flink_env() -> Path:
    """The Python of the Flink environment."""
    try:
        return flink_python()
    except DependencyError as exc:
        pytest.fail(f"the Flink tests need .venv-flink: {exc}")
