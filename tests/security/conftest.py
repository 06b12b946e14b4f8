"""Fixtures reused from the API and WhatsApp suites (same shared test database and Redis)."""

from tests.api.conftest import (  # noqa: F401
    admin,
    anon,
    app,
    clients,
    clock,
    receiver,
    resolver,
)
from tests.whatsapp.conftest import h, harness  # noqa: F401
