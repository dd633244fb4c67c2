"""Shared fixtures: the local cloud's servers, started once per test run."""

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.cloud",
    "tests.fixtures.controlplane",
    "tests.fixtures.tokens",
    "tests.fixtures.api",
    "tests.fixtures.identity",
    "tests.fixtures.network",
]

# How fast hypothesis generates a case depends on how busy the machine is: no test may fail
# for that (the too_slow health check, a per-case deadline). The other health checks judge
# the strategies themselves, and stay.
settings.register_profile("suite", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("suite")
