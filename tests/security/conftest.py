"""Fixtures reused from the API and WhatsApp suites (same shared test database and Redis)."""

from tests.api.conftest import admin, anon, app, clients, clock, receiver  # noqa: F401
from tests.whatsapp.conftest import h, harness  # noqa: F401
