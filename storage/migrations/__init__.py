"""Alembic migrations for the Be-Safe database (run through `storage.db.migrate`)."""
