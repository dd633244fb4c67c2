"""The API fixtures live in tests/fixtures/api.py (a plugin of tests/conftest.py), shared
with tests/robustness; the helpers are re-exported here for the tests that import them."""

from tests.fixtures.api import Functions, status_is, zip_b64

__all__ = ["Functions", "status_is", "zip_b64"]
