"""The API tests' fixtures live in tests/api_fixtures.py (registered for the whole suite in
tests/conftest.py, so that end-to-end scenarios use the same running servers and credentials);
names are re-exported here for the tests that import them."""

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import (  # noqa: F401
    JWT_SECRET,
    KEYS,
    OTHER_UNIT,
    PASSWORD,
    PATROL_UNIT,
    assign,
    raise_manual,
    sse_events,
)
