"""Shared fixtures: the local cloud's servers, started once per test run."""

pytest_plugins = [
    "tests.fixtures.cloud",
    "tests.fixtures.kubesim",
    "tests.fixtures.api",
    "tests.fixtures.identity",
]
