"""Shared pytest setup: hypothesis profiles and the traceability markers.

Profiles (select with HYPOTHESIS_PROFILE): ``default`` for `make test`, ``fuzz`` for
`make fuzz` (>= 100 000 examples per codec property).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=100_000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
