"""Root conftest: kept small. cleanroom's own plugin arrives through its pytest11 entry point."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile("cleanroom", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cleanroom"))
