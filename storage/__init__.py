"""Storage: SQLModel tables, engines for SQLite and PostgreSQL, migrations, repositories,
pseudonyms. Knows nothing about channels beyond storing a channel name."""
