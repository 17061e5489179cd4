"""Shared test settings: hypothesis profiles and the devices to run on.

HYPOTHESIS_PROFILE=ci (the default) keeps the suite fast and the same on every run; `dev` and
`thorough` draw more, and new, examples of every property:
HYPOTHESIS_PROFILE=thorough python -m pytest
"""

import os

import fake_cupy
import pytest
from hypothesis import HealthCheck, settings

import minigrad as mg

# Without a real GPU, the "cuda" device runs on a stand-in for CuPy (tests/fake_cupy.py), so that
# every device-parametrised test also checks that no host array leaks into device code.
if not mg.cuda.is_available():
    fake_cupy.install()

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
# ci draws the same examples on every run (derandomize), so a rare case found by a `dev` or
# `thorough` run is chased there, not discovered as a flaky CI
settings.register_profile("ci", max_examples=12, derandomize=True, **_common)
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _device_checks_are_made_in_the_test_that_queued_them():
    """A check of device data that a test queued (backend.check) and never read is made when
    the test ends, so that its error is reported there and not in a later test."""
    yield
    mg.backend.run_pending_checks()
