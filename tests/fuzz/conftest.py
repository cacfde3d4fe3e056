"""The fuzz tests' Hypothesis profiles: the CI run is each test's small ``budget``; the longer
run is ``.venv/bin/pytest tests/fuzz --hypothesis-profile=fuzz`` (``FUZZ_EXAMPLES`` examples per
test, 20,000 unless set; random, with failures kept in ``.hypothesis/`` and replayed first)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fuzz.strategies import FUZZ_EXAMPLES, SUPPRESSED
from tests.fuzz.targets import close_loop

settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=SUPPRESSED,
)


@pytest.fixture(scope="module", autouse=True)
def _targets_loop() -> Iterator[None]:
    """The loop the targets run their coroutines on, closed after each module."""
    yield
    close_loop()


@pytest.fixture
def pg_url(pg: AsyncEngine) -> str:
    """The test PostgreSQL database (emptied), for targets that open their own engine."""
    return pg.url.render_as_string(hide_password=False)
