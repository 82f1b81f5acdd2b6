"""Shared test helpers.

Optional oracles (PyTorch, scikit-learn, PostgreSQL, Weights & Biases) are skipped where
they are missing, except under ``CI=true``, where a missing oracle fails the test instead:
CI installs all of them, so a skip there would hide a broken install.
"""

import importlib
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(module_name: str):
    """Import and return ``module_name``, or skip the test (fail it under CI=true)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        message = f"{module_name} is not installed ({error}); install chainrule[test]"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def skip_or_fail(reason: str) -> None:
    """Skip the test for a missing external resource, or fail it under CI=true."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)
