"""Tables of the safeguarding review queue (issue 4): flag history, notes, referrals, alerts.

Declared with the same conventions as `storage.tables` (import `utcnow` from
`storage.clock`, portable types only); created by their own migration.
"""

from __future__ import annotations

from sqlalchemy import Table

TABLES: tuple[Table, ...] = ()
