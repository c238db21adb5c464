"""Shared test wiring: database backends and the browser live in their own plugin modules."""

pytest_plugins = ["tests.db_fixtures", "tests.browser_fixtures"]
