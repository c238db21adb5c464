"""Shared test wiring: database backends and the browser live in their own plugin modules."""

import pytest
from hypothesis import settings

# No per-example time limit: timings belong in bench/, and a loaded CI machine would make
# Hypothesis' default 200 ms deadline fail tests that are correct.
settings.register_profile("besafe", deadline=None)
settings.load_profile("besafe")

pytest_plugins = ["tests.db_fixtures", "tests.browser_fixtures"]


@pytest.fixture(autouse=True)
def _rules_only_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built in tests screen with the rules alone, so no test loads the stage-2 model
    unless it asks with `Settings(semantic=True)` (tests/bot/test_dispatcher_semantic.py)."""
    monkeypatch.setenv("BESAFE_SEMANTIC", "0")
