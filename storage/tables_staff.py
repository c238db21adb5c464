"""Tables of the staff app (issue 4): accounts, sessions, flag actions, audit log.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by their own migration.
"""

from __future__ import annotations

from sqlalchemy import Table

TABLES: tuple[Table, ...] = ()
